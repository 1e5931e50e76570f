/* Chat formats (see chat.h). */
#include "chat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../scheduler/log.h"

struct chat_desc {
    const char *name;
    const char *start;        /* text before the first message */
    const char *role_head[3]; /* before the content, per role */
    const char *role_tail[3]; /* after the content, per role */
    const char *gen_prompt;   /* asks for an assistant reply */
    bool trim;                /* content trimmed (the HF template's `| trim`) */
};

static const struct chat_desc formats[TERN_CHAT_COUNT] = {
    [TERN_CHAT_BITNET] = {"bitnet",
                          "<|begin_of_text|>",
                          {"System: ", "User: ", "Assistant: "},
                          {"<|eot_id|>", "<|eot_id|>", "<|eot_id|>"},
                          "Assistant: ",
                          true},
    [TERN_CHAT_LLAMA3] = {"llama3",
                          "<|begin_of_text|>",
                          {"<|start_header_id|>system<|end_header_id|>\n\n",
                           "<|start_header_id|>user<|end_header_id|>\n\n",
                           "<|start_header_id|>assistant<|end_header_id|>\n\n"},
                          {"<|eot_id|>", "<|eot_id|>", "<|eot_id|>"},
                          "<|start_header_id|>assistant<|end_header_id|>\n\n",
                          true},
    [TERN_CHAT_FALCON3] = {"falcon3",
                           "",
                           {"<|system|>\n", "<|user|>\n", "<|assistant|>\n"},
                           {"\n", "\n", "<|endoftext|>\n"},
                           "<|assistant|>\n",
                           false},
};

tern_status tern_chat_format_from_name(const char *name, enum tern_chat_format *out) {
    for (int f = 0; f < TERN_CHAT_COUNT; f++)
        if (strcmp(formats[f].name, name) == 0) {
            *out = (enum tern_chat_format)f;
            return TERN_OK;
        }
    tern_log_error("unknown chat format '%s' (bitnet, llama3, falcon3)", name);
    return TERN_ERR_ARG;
}

const char *tern_chat_format_name(enum tern_chat_format f) {
    return formats[f].name;
}

static bool contains(struct tern_str s, const char *needle) {
    const size_t n = strlen(needle);
    for (uint64_t i = 0; i + n <= s.len; i++)
        if (memcmp(s.ptr + i, needle, n) == 0)
            return true;
    return false;
}

enum tern_chat_format tern_chat_format_detect(const tern_gguf *g, const tern_tokenizer *tok) {
    struct tern_str t = {0}, arch = {0};
    tern_status st = tern_gguf_get_str(g, "tokenizer.chat_template", &t);
    if (!st) {
        if (contains(t, "<|start_header_id|>"))
            return TERN_CHAT_LLAMA3;
        if (contains(t, "<|assistant|>"))
            return TERN_CHAT_FALCON3;
        if (contains(t, "BITNET"))
            return TERN_CHAT_BITNET;
    }
    /* the 2B-4T vocabulary is Llama-3's: the architecture decides before the vocabulary */
    st = tern_gguf_get_str(g, "general.architecture", &arch);
    if (!st && arch.len >= 6 && memcmp(arch.ptr, "bitnet", 6) == 0)
        return TERN_CHAT_BITNET;
    if (tok && tern_tokenizer_find(tok, "<|assistant|>", 13) >= 0)
        return TERN_CHAT_FALCON3;
    return TERN_CHAT_LLAMA3;
}

static bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

char *tern_chat_render_message(enum tern_chat_format f, enum tern_chat_role role, const char *content,
                               bool first) {
    const struct chat_desc *d = &formats[f];
    size_t len = strlen(content);
    if (d->trim) {
        while (len && is_space(*content)) {
            content++;
            len--;
        }
        while (len && is_space(content[len - 1]))
            len--;
    }
    const char *parts[4] = {first ? d->start : "", d->role_head[role], content, d->role_tail[role]};
    const size_t lens[4] = {strlen(parts[0]), strlen(parts[1]), len, strlen(parts[3])};
    char *out = malloc(lens[0] + lens[1] + lens[2] + lens[3] + 1);
    if (!out)
        return NULL;
    char *p = out;
    for (int i = 0; i < 4; i++) {
        memcpy(p, parts[i], lens[i]);
        p += lens[i];
    }
    *p = 0;
    return out;
}

const char *tern_chat_assistant_end(enum tern_chat_format f) {
    return formats[f].role_tail[TERN_CHAT_ASSISTANT];
}

const char *tern_chat_generation_prompt(enum tern_chat_format f) {
    return formats[f].gen_prompt;
}
