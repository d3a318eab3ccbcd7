/*
 * Micro-benchmark of the prompt plugins' request-path cost: ai-prompt-guard
 * with 10 deny patterns on a ~4 KB chat prompt, then ai-prompt-decorator,
 * both loaded from a kong.yml string by the real config loader.
 *
 *   prompt_micro [iterations]        (default 200000)
 *   valgrind --tool=callgrind prompt_micro 2000
 *
 * Each phase runs over a batch of pre-parsed bodies in its own noinline
 * function, so timings and callgrind's per-function costs line up. Parsing
 * and serialising are shown apart: ai-proxy pays for them with or without
 * these plugins (the decorator only makes the serialisation happen).
 * Not part of ctest: no timing assertions in the test suite.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "gw_plugin.h"
#include "../plugins/ai-prompt-guard/prompt_guard.h"
#include "../plugins/ai-prompt-decorator/prompt_decorator.h"

#define BATCH 256

static const char kong_yml[] =
    "_format_version: '3.0'\n"
    "plugins:\n"
    "- name: ai-prompt-guard\n"
    "  config:\n"
    "    deny_patterns:\n"
    "    - '(?i)ignore (all )?(previous|prior) instructions'\n"
    "    - '(?i)system prompt'\n"
    "    - '\\b\\d{3}-\\d{2}-\\d{4}\\b'\n"
    "    - '(?i)\\bpassword\\b'\n"
    "    - '(?i)jailbreak'\n"
    "    - '\\bDAN\\b'\n"
    "    - 'api[_-]?key'\n"
    "    - '(?i)credit card number'\n"
    "    - '\\b4[0-9]{12}(?:[0-9]{3})?\\b'\n"
    "    - '(?i)how to (make|build) a (bomb|weapon)'\n"
    "- name: ai-prompt-decorator\n"
    "  config:\n"
    "    prompts:\n"
    "      prepend:\n"
    "      - role: system\n"
    "        content: You are a helpful assistant for ACME support. Answer politely.\n"
    "      - role: assistant\n"
    "        content: Hello! How can I help you today?\n"
    "      append:\n"
    "      - role: user\n"
    "        content: Answer in at most three sentences.\n";

static const char sentence[] = "The quick brown fox jumps over the lazy dog while the network "
                               "engineer reviews the gateway latency numbers. ";

/* {"model":..., "messages":[system, user with ~4 KB of text]} */
static char *make_body(size_t prompt_bytes)
{
    size_t cap = prompt_bytes + 512, len;
    char *b = malloc(cap);
    if (!b) abort();
    len = (size_t)snprintf(b, cap,
                           "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"system\",\"content\":"
                           "\"You are terse.\"},{\"role\":\"user\",\"content\":\"");
    for (size_t p = 0; p < prompt_bytes;) {
        size_t n = sizeof(sentence) - 1;
        if (n > prompt_bytes - p) n = prompt_bytes - p;
        memcpy(b + len, sentence, n);
        len += n;
        p += n;
    }
    len += (size_t)snprintf(b + len, cap - len, "\"}],\"temperature\":0.2}");
    return b;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static __attribute__((noinline)) void phase_parse(cJSON **bodies, const char *text)
{
    for (int i = 0; i < BATCH; i++)
        bodies[i] = cJSON_Parse(text);
}

static __attribute__((noinline)) int phase_guard(cJSON **bodies,
                                                 const struct prompt_guard_conf *guard)
{
    int allowed = 0;
    struct prompt_guard_verdict v;
    for (int i = 0; i < BATCH; i++)
        allowed += prompt_guard_check(guard, bodies[i], &v) == PROMPT_GUARD_ALLOWED;
    return allowed;
}

static __attribute__((noinline)) int phase_decorate(cJSON **bodies,
                                                    const struct prompt_decorator_conf *dec)
{
    int ok = 0;
    for (int i = 0; i < BATCH; i++)
        ok += prompt_decorator_apply(dec, bodies[i]) == 0;
    return ok;
}

static __attribute__((noinline)) size_t phase_print(cJSON **bodies)
{
    size_t bytes = 0;
    for (int i = 0; i < BATCH; i++) {
        char *s = cJSON_PrintUnformatted(bodies[i]);
        bytes += strlen(s);
        free(s);
    }
    return bytes;
}

static __attribute__((noinline)) void phase_free(cJSON **bodies)
{
    for (int i = 0; i < BATCH; i++)
        cJSON_Delete(bodies[i]);
}

static const void *plugin_conf(const struct gw_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_plugins; i++)
        if (strcmp(cfg->plugins[i]->plugin->name, name) == 0) return cfg->plugins[i]->conf;
    return NULL;
}

int main(int argc, char **argv)
{
    long iterations = argc > 1 ? atol(argv[1]) : 200000;
    long rounds = iterations / BATCH > 0 ? iterations / BATCH : 1;
    struct gw_errlist errs = {0};
    struct gw_config *cfg =
        gw_config_load_string("bench.yml", kong_yml, sizeof(kong_yml) - 1, &errs);
    if (!cfg) {
        for (size_t i = 0; i < errs.n; i++)
            fprintf(stderr, "%s\n", errs.v[i]);
        return 1;
    }
    const struct prompt_guard_conf *guard = plugin_conf(cfg, "ai-prompt-guard");
    const struct prompt_decorator_conf *dec = plugin_conf(cfg, "ai-prompt-decorator");
    char *text = make_body(4096);
    cJSON *bodies[BATCH];
    double t[5] = {0};
    long allowed = 0, decorated = 0;
    size_t bytes = 0;

    for (long r = 0; r < rounds; r++) {
        double t0 = now_ns();
        phase_parse(bodies, text);
        double t1 = now_ns();
        allowed += phase_guard(bodies, guard);
        double t2 = now_ns();
        decorated += phase_decorate(bodies, dec);
        double t3 = now_ns();
        bytes += phase_print(bodies);
        double t4 = now_ns();
        phase_free(bodies);
        double t5 = now_ns();
        t[0] += t1 - t0;
        t[1] += t2 - t1;
        t[2] += t3 - t2;
        t[3] += t4 - t3;
        t[4] += t5 - t4;
    }
    double n = (double)rounds * BATCH;
    printf("prompt_micro: %.0f requests, %zu-byte body, %zu deny patterns, %zu+%zu decorations\n",
           n, strlen(text), guard->deny_patterns.n, dec->prompts.prepend.n, dec->prompts.append.n);
    printf("  parse      %8.0f ns/op  (shared with ai-proxy)\n", t[0] / n);
    printf("  guard      %8.0f ns/op  (%ld allowed)\n", t[1] / n, allowed);
    printf("  decorate   %8.0f ns/op  (%ld decorated)\n", t[2] / n, decorated);
    printf("  serialise  %8.0f ns/op  (%.0f bytes out)\n", t[3] / n, (double)bytes / n);
    printf("  free       %8.0f ns/op\n", t[4] / n);
    printf("  guard+decorate: %.0f ns/op\n", (t[1] + t[2]) / n);
    free(text);
    gw_config_free(cfg);
    gw_errlist_free(&errs);
    return allowed == (long)n && decorated == (long)n ? 0 : 1;
}
