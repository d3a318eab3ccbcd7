/*
 * The LLM provider layer: pure translation between the OpenAI API that
 * clients speak and each provider's own API. No I/O here: the caller (the
 * ai-proxy plugin, later semantic-cache embeddings) sends what
 * build_request produced and feeds back what came in.
 *
 * One provider is one file under src/llm/providers/ exporting a
 * `const struct gw_llm_provider` and one line in the table in llm.c.
 *
 * A request's translation state is one struct gw_llm_call, living in the
 * request arena: the same struct is handed to build_request,
 * parse_response and stream_frame, so a provider can remember what it sent
 * (the prompt, whether the client asked for usage) when the reply comes.
 */
#ifndef GW_LLM_H
#define GW_LLM_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

struct gw_arena;
struct evbuffer;

enum gw_llm_route {
    GW_LLM_CHAT,        /* llm/v1/chat */
    GW_LLM_COMPLETIONS, /* llm/v1/completions */
    GW_LLM_EMBEDDINGS,  /* llm/v1/embeddings */
    GW_LLM_PRESERVE,    /* body passed through untouched */
};
extern const char *const gw_llm_route_names[]; /* "llm/v1/chat", ..., NULL */

/* Wire format of llama2 / mistral upstreams (model.options.llama2_format,
 * mistral_format). GW_LLM_FMT_DEFAULT: the provider's own API. */
enum gw_llm_format { GW_LLM_FMT_DEFAULT, GW_LLM_FMT_OPENAI, GW_LLM_FMT_OLLAMA, GW_LLM_FMT_RAW };

/* An option a config may leave out, where 0 is a meaningful value. */
struct gw_opt_num {
    int set;
    double v;
};

/* model.options, as the plugin resolved them for this request (templates
 * substituted). Strings may be NULL. */
struct gw_llm_options {
    struct gw_opt_num max_tokens, temperature, top_p, top_k;
    struct gw_opt_num input_cost, output_cost; /* per million tokens */
    const char *upstream_url;                  /* full URL of the endpoint */
    const char *upstream_path;                 /* replaces the default path */
    const char *anthropic_version;
    const char *azure_instance, *azure_api_version, *azure_deployment_id;
    int llama2_format;  /* enum gw_llm_format */
    int mistral_format; /* enum gw_llm_format */
    /* Per request, not config: Azure's ?api-version= as the client sent it
     * (URL-encoded), which comes before any configured one (Kong's rule). */
    const char *client_api_version;
};

/* Token accounting, from a reply or a stream. cached: -1 = not reported. */
struct gw_llm_usage {
    int present;
    long prompt, completion, total, cached;
};

/* Per-request translation state. Inputs first, then what the provider
 * records, then stream state. */
struct gw_llm_call {
    struct gw_arena *arena;
    const struct gw_llm_provider *provider;
    enum gw_llm_route route;
    const struct gw_llm_options *opt;
    const char *model; /* final model name (config, else the client's) */
    int stream;        /* client asked for a stream */
    int include_usage; /* client sent stream_options.include_usage */
    int usage_native;  /* OpenAI format, GW_LLM_USAGE_NATIVE: the usage chunk is ours to make */
    int embed_base64;  /* embeddings: the client sent encoding_format "base64" */

    /* Filled by parse_response / stream_frame. */
    struct gw_llm_usage usage;
    const char *response_model;
    const char *sent_prompt; /* llama2 raw: to strip the echoed prompt */
    const char *json_tool;   /* anthropic: the tool standing for response_format */

    /* Stream state. */
    const char *chunk_id;
    long created;
    int role_sent, finish_sent, done_sent, errored;
    int at_eof;                /* the frames now are what the upstream's close left in the parser */
    int content_sent;          /* llama2 raw: a non-blank text delta went out */
    int n_tool_calls;          /* OpenAI tool_calls[].index handed out so far */
    int block_tool[64];        /* anthropic content block index -> tool index + 1,
                                  -1: the json_tool block, streamed as content */
    uint64_t block_args;       /* anthropic: bit i, block i's tool got argument text */
    const char *finish_reason; /* pending, mapped */
    /* "data: {...,"delta":{"content":" of text chunks, built once per
     * stream (again if the model changes): the hot path of a stream. */
    char *text_prefix;
    size_t text_prefix_len;
    const char *text_prefix_model;
};

/* What build_request produces: the upstream request. */
#define GW_LLM_MAX_HEADERS 4
struct gw_llm_upstream {
    const char *method;
    const char *url;
    const char *headers[GW_LLM_MAX_HEADERS][2]; /* extra headers (anthropic-version...) */
    size_t n_headers;
    /* Bit i: headers[i] is a default that a value the client sent itself
     * keeps (preserve: a native SDK chose its API version). */
    unsigned headers_if_absent;
    char *body; /* arena */
    size_t body_len;
    int ndjson; /* stream framing: 1 NDJSON lines (Ollama), 0 SSE */
};

struct gw_llm_provider {
    const char *name;
    /* Header that carries the key, and whether its value is "Bearer <key>":
     * how a client's `Authorization: Bearer K` is forwarded without auth. */
    const char *auth_header;
    int auth_bearer;
    /* Where the provider's own SDK reads a request id besides
     * x-request-id (Anthropic: request-id), or NULL: the gateway's own
     * answers on such a route carry it too. */
    const char *request_id_header;
    /* Load-time checks of provider-required options. Returns 0, or -1 with
     * *field (path under model.options, or "route_type") and *msg set. */
    int (*validate)(enum gw_llm_route route, const struct gw_llm_options *o, const char **field,
                    const char **msg);
    /* Client OpenAI request -> upstream request. -1 with *err (a client
     * error: the caller answers 400). body is read-only. */
    int (*build_request)(struct gw_llm_call *c, const cJSON *body, struct gw_llm_upstream *up,
                         const char **err);
    /* Upstream reply -> OpenAI reply (2xx) or OpenAI error object (other
     * statuses, same status kept by the caller). Returns the tree (caller
     * frees with cJSON_Delete) or NULL with *err: untranslatable, a 502. */
    cJSON *(*parse_response)(struct gw_llm_call *c, int status, const char *body, size_t len,
                             const char **err);
    /* One complete upstream frame (SSE event name + data, or one NDJSON line
     * with event NULL) -> zero or more `data: {...}\n\n` chunks appended to
     * out. Returns 0, or -1 on a frame that ends the stream (an error event
     * was appended). */
    int (*stream_frame)(struct gw_llm_call *c, const char *event, const char *data, size_t len,
                        struct evbuffer *out);
};

/* Embeddings a client asked for as base64 (what the OpenAI SDKs ask by
 * default) but got as arrays of numbers (Ollama's native API, servers that
 * ignore encoding_format): each becomes OpenAI's base64 of little-endian
 * float32, in place. No-op unless c->embed_base64. */
void gw_llm_embeddings_to_base64(const struct gw_llm_call *c, cJSON *reply);

/* The provider table. */
const struct gw_llm_provider *gw_llm_provider_find(const char *name);
extern const struct gw_llm_provider *const gw_llm_providers[];
/* Their names, same order (gw_llm_provider_names[i] is gw_llm_providers[i]),
 * NULL-terminated: the choices of ai-proxy's model.provider. */
extern const char *const gw_llm_provider_names[];

/* Starts a call: zeroes c, fills inputs, sets usage.cached = -1. */
void gw_llm_call_init(struct gw_llm_call *c, struct gw_arena *arena,
                      const struct gw_llm_provider *p, enum gw_llm_route route,
                      const struct gw_llm_options *opt, const char *model);

/* Reads `stream` and `stream_options.include_usage` from the client body
 * into c, sets method POST, then runs the provider's build_request. */
int gw_llm_build(struct gw_llm_call *c, const cJSON *body, struct gw_llm_upstream *up,
                 const char **err);

/* The stream ended (upstream closed). Appends an error event if the
 * provider's stream stopped before its end marker, and `data: [DONE]` if
 * not sent yet. Returns 0 when the stream had ended properly, -1 if not. */
int gw_llm_stream_end(struct gw_llm_call *c, struct evbuffer *out);

/* A client asked for a stream and the upstream answered with one JSON
 * reply (servers that ignore `stream`): the translated OpenAI reply as the
 * chunk sequence a stream would have carried, ending in [DONE]. */
void gw_llm_reply_to_chunks(struct gw_llm_call *c, const cJSON *reply, struct evbuffer *out);

/* Cost of the recorded usage with options' input_cost / output_cost. */
double gw_llm_cost(const struct gw_llm_call *c);

/* ---- Helpers shared by providers (llm.c) ---- */

/* {"error":{"message","type","param":null,"code"}} with a type derived
 * from the status when type is NULL. */
cJSON *gw_llm_error_object(int status, const char *type, const char *message, const char *code);
/* A provider's non-2xx reply, whatever its shape (OpenAI/Anthropic error
 * objects, {"error":"text"}, {"message"}, HTML), as an OpenAI error object. */
cJSON *gw_llm_error_from_reply(int status, const char *body, size_t len);
/* OpenAI "type" for an HTTP status. */
const char *gw_llm_error_type(int status);
/* Appends "data: <json>\n\n" and frees nothing. */
void gw_llm_emit_json(struct evbuffer *out, const cJSON *chunk);
void gw_llm_emit_done(struct gw_llm_call *c, struct evbuffer *out);
/* Appends an error event ({"error":{...}}) and marks the stream errored. */
void gw_llm_emit_error(struct gw_llm_call *c, struct evbuffer *out, const char *message);
/* A chat.completion.chunk skeleton with id/object/created/model and one
 * choice whose delta is returned through *delta. */
cJSON *gw_llm_chunk_new(struct gw_llm_call *c, cJSON **delta, cJSON **choice);
/* Ensures the role chunk was sent (first chunk of an OpenAI stream). */
void gw_llm_emit_role(struct gw_llm_call *c, struct evbuffer *out);
/* Final chunk with finish_reason (once), then the usage chunk when the
 * client asked for it, then [DONE]. */
void gw_llm_emit_finish(struct gw_llm_call *c, struct evbuffer *out, const char *finish_reason);
void gw_llm_emit_tail(struct gw_llm_call *c, struct evbuffer *out);
/* Usage object in OpenAI's shape from c->usage. */
cJSON *gw_llm_usage_json(const struct gw_llm_call *c);
/* Reads an OpenAI usage object into c->usage (ignores wrong types). */
void gw_llm_usage_from_openai(struct gw_llm_call *c, const cJSON *usage);
/* "chatcmpl-<24 random hex>" style ids, in the arena. */
const char *gw_llm_new_id(struct gw_arena *a, const char *prefix);

/* Shared by the providers that build an OpenAI reply or chunk themselves,
 * so that every translated reply carries the same head and framing. */

/* The start of every parse_response: a non-2xx reply becomes an OpenAI
 * error object, a 2xx one must be a JSON object. Returns 0 with *j the
 * parsed object, or 1 when *j is already the answer (the error object, or
 * NULL with *err set). */
int gw_llm_reply_parse(int status, const char *body, size_t len, cJSON **j, const char **err);
/* A chat.completion / text_completion object with id (NULL: a new one),
 * object, created, model (NULL: the call's) and one choice {"index":0}
 * returned through *choice, for the caller to fill. */
cJSON *gw_llm_reply_new(struct gw_llm_call *c, const char *id, const char *model, cJSON **choice);
/* Parses one stream frame that must be a JSON object; NULL after an error
 * event with not_json as message (the frame ends the stream). */
cJSON *gw_llm_frame_json(struct gw_llm_call *c, const char *data, size_t len, struct evbuffer *out,
                         const char *not_json);
/* Whether a stream frame is OpenAI's end marker `[DONE]`. */
int gw_llm_is_done_marker(const char *data, size_t len);
/* Appends "data: <bytes>\n\n": a frame passed through as received. */
void gw_llm_emit_raw(struct evbuffer *out, const char *data, size_t len);
/* One text chunk: delta.content (chat) or choices[0].text (completions);
 * nothing for NULL or "". */
void gw_llm_emit_text(struct gw_llm_call *c, struct evbuffer *out, const char *text);
/* The same chunk from text that is already a JSON string's body (escaped,
 * without its quotes), copied as it is; -1 (nothing sent) where only
 * gw_llm_emit_text can do it (the completions route). */
int gw_llm_emit_text_json(struct gw_llm_call *c, struct evbuffer *out, const char *json,
                          size_t len);

/* Request helpers for the non-OpenAI wire formats, where plugin options
 * must win over the client's values (Kong) under the provider's key. */

/* key: the option when set, else the client's number under the same key. */
void gw_llm_add_num(cJSON *dst, const char *key, const struct gw_opt_num *opt, const cJSON *body);
/* key: max_tokens option, else the client's max_tokens, else its
 * max_completion_tokens; absent when none is set. */
void gw_llm_add_max_tokens(cJSON *dst, const char *key, const struct gw_llm_options *o,
                           const cJSON *body);
/* key: the client's `stop` as an array of strings (a string becomes a
 * one-element array); absent when stop is missing or an empty array. */
void gw_llm_add_stop(cJSON *dst, const char *key, const cJSON *body);

/* Splits "data:image/png;base64,AAAA" into media type and base64 payload
 * (both in the arena). Returns 0, or -1 if url is not a base64 data URI. */
int gw_llm_data_uri(struct gw_arena *a, const char *url, const char **media_type,
                    const char **data);
/* Maps a provider's stop reason to OpenAI's finish_reason. */
const char *gw_llm_finish_reason(const char *provider_reason);

/* Number / string / bool accessors that tolerate wrong types. */
const char *gw_json_str(const cJSON *obj, const char *key);
int gw_json_num(const cJSON *obj, const char *key, double *out);
/* A token count: a number from 0 to 1e12 (anything else from a provider,
 * negative or absurd, is taken as not reported: it would poison costs and
 * budgets). Returns 1 and sets *out, or 0. */
int gw_json_tokens(const cJSON *obj, const char *key, double *out);
/* Serialises json into the arena (unformatted). */
char *gw_json_print(struct gw_arena *a, const cJSON *json, size_t *len);
/* Parses body (not necessarily NUL-terminated); NULL if not JSON. */
cJSON *gw_json_parse(const char *body, size_t len);

/* Default URL from options: upstream_url if set, else origin + (upstream_path
 * or default_path). */
const char *gw_llm_url(struct gw_llm_call *c, const char *origin, const char *default_path);

/* Applies options over client values (Kong: plugin options win). */
void gw_llm_apply_sampling(const struct gw_llm_options *o, cJSON *req, int use_completion_tokens);

/* ---- OpenAI wire format, shared by openai, azure, mistral, llama2 ---- */
/* How an OpenAI-format upstream reports a stream's token usage. */
enum gw_llm_stream_usage {
    /* Only when asked: stream_options.include_usage is added (merged into
     * the client's stream_options) and the extra chunk dropped later when
     * the client did not ask. OpenAI, compatible servers, newer Azure. */
    GW_LLM_USAGE_ASK,
    /* Unasked, on its last chunk, and stream_options is refused (Mistral:
     * 422 extra_forbidden): the client's is removed, and the usage chunk a
     * client asked for is made from what that last chunk carried. */
    GW_LLM_USAGE_NATIVE,
    /* Not at all, and stream_options is refused (Azure api-versions before
     * 2024-09-01): nothing is added; the client's own is passed on. */
    GW_LLM_USAGE_NONE,
};
int gw_llm_openai_build_body(struct gw_llm_call *c, const cJSON *body, struct gw_llm_upstream *up,
                             enum gw_llm_stream_usage usage, const char **err);
cJSON *gw_llm_openai_parse(struct gw_llm_call *c, int status, const char *body, size_t len,
                           const char **err);
int gw_llm_openai_stream_frame(struct gw_llm_call *c, const char *event, const char *data,
                               size_t len, struct evbuffer *out);

/* ---- Ollama wire format (/api/chat, /api/generate), mistral and llama2 ---- */
int gw_llm_ollama_build_body(struct gw_llm_call *c, const cJSON *body, struct gw_llm_upstream *up,
                             const char **err);
cJSON *gw_llm_ollama_parse(struct gw_llm_call *c, int status, const char *body, size_t len,
                           const char **err);
int gw_llm_ollama_stream_frame(struct gw_llm_call *c, const char *event, const char *data,
                               size_t len, struct evbuffer *out);

/* ---- Framing (sse.c) ---- */

/* Incremental SSE parser: bytes may be split anywhere; lines end in \n,
 * \r\n or \r; `data:` lines of one event are joined with \n; comments are
 * skipped. Buffers live in the arena. */
typedef int (*gw_sse_event_cb)(void *arg, const char *event, const char *data, size_t len);
struct gw_sse_parser {
    struct gw_arena *arena;
    int ndjson; /* one event per non-empty line, event name NULL */
    char *line;
    size_t line_len, line_cap;
    char *data;
    size_t data_len, data_cap;
    char event[64];
    int has_data, last_cr;
    size_t max_size; /* a line or an event larger than this is an error */
    int too_large;   /* one was: the stream cannot go on (nothing more is parsed) */
};
void gw_sse_init(struct gw_sse_parser *p, struct gw_arena *arena, int ndjson);
/* Feeds bytes, calling cb for each complete event. Returns 0, or -1 when cb
 * returned -1 or a frame exceeded max_size. */
int gw_sse_feed(struct gw_sse_parser *p, const char *buf, size_t len, gw_sse_event_cb cb,
                void *arg);
/* End of input: dispatches an event that lacked its final blank line
 * (SSE) or newline (NDJSON). */
int gw_sse_finish(struct gw_sse_parser *p, gw_sse_event_cb cb, void *arg);

#endif
