/*
 * YAML text -> tree of gw_node (see gw_schema.h) in an arena, with the file,
 * line and column of every value so that later errors can point at it.
 *
 * Aliases point at the anchored node (the tree is a DAG, never a copy, so
 * "billion laughs" costs nothing here; walkers that expand it must bound
 * their work). An anchor becomes usable once its node is complete, so a
 * node can never contain itself. Merge keys (`<<: *base`) are applied. A
 * duplicate key in one mapping is an
 * error, as are non-scalar keys, undefined aliases and more than one
 * document.
 */
#ifndef GW_YAML_NODE_H
#define GW_YAML_NODE_H

#include <stddef.h>

#include "gw_schema.h"

struct gw_arena;
struct gw_errlist;

/* Nesting deeper than this is refused (the walkers recurse). */
#define GW_YAML_MAX_DEPTH 256

/* Parses text (len bytes, need not be NUL-terminated). `file` is copied and
 * used verbatim in every node and error. Returns the root node (a
 * GW_NODE_NULL node at 1:1 for an empty document) or NULL after adding
 * "FILE:LINE:COL: problem" messages to errs. A repeated key is an error
 * ("FILE:LINE:COL: PATH: duplicate key ...") that still returns the tree
 * (first value kept), so that the caller goes on to report the rest:
 * callers check errs, not only the result. */
struct gw_node *gw_yaml_load(struct gw_arena *a, const char *file, const char *text, size_t len,
                             struct gw_errlist *errs);

/* How a plain scalar reads as YAML: 1 for true/false (sets *b), 2 for an
 * integer (sets *l), 3 for another number (sets *d), 0 for a string. Quoted
 * scalars are always strings. */
int gw_node_plain_type(const struct gw_node *n, int *b, long *l, double *d);

/* A node made by code (defaults, a missing `config:`), placed at `at`'s position. */
struct gw_node *gw_node_new(struct gw_arena *a, enum gw_node_type type, const struct gw_node *at);

#endif
