/* libFuzzer target for JSON mode (host/generate/json_mode.c, docs/fuzzing.md): each input is a
 * text, or a JSON schema, a NUL byte and a text. The schema compiles or is refused without harm;
 * the text, fed whole, a byte at a time, and in two parts split where its first byte says, gets one
 * verdict; and a text taken as a whole object is one jansson reads, but for what jansson alone
 * refuses: numbers beyond a double and \u escapes of lone surrogates (the grammar takes them).
 * Aborts otherwise. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "host/generate/json_mode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 1: a whole object, 0: a prefix of one, -1: neither */
static int verdict(const struct tern_json_state *st, bool fed) {
    return !fed ? -1 : tern_json_complete(st) ? 1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    tern_json_schema *g = NULL;
    if (nul) {
        json_t *schema = json_loadb((const char *)data, (size_t)(nul - data), 0, NULL);
        char why[256] = "";
        if (schema && tern_json_schema_compile(schema, &g, why, sizeof why) && !why[0])
            abort(); /* a refusal says why */
        json_decref(schema);
        size -= (size_t)(nul + 1 - data);
        data = nul + 1;
    }
    const char *text = (const char *)data;
    struct tern_json_state whole, bytes, parts;
    tern_json_start(&whole, g);
    tern_json_start(&bytes, g);
    tern_json_start(&parts, g);
    const int v = verdict(&whole, tern_json_feed(&whole, text, size));
    bool fed = true;
    for (size_t i = 0; i < size && fed; i++)
        fed = tern_json_feed(&bytes, text + i, 1);
    const size_t cut = size ? data[0] % (size + 1) : 0;
    const bool fed2 = tern_json_feed(&parts, text, cut) && tern_json_feed(&parts, text + cut, size - cut);
    if (verdict(&bytes, fed) != v || verdict(&parts, fed2) != v)
        abort();
    if (v == 1) {
        json_error_t err;
        json_t *j = json_loadb(text, size, JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, &err);
        const bool jansson_alone = !j && (strstr(err.text, "overflow") || strstr(err.text, "Unicode"));
        if (!json_is_object(j) && !jansson_alone)
            abort();
        json_decref(j);
    }
    free(g);
    return 0;
}
