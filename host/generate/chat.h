/* Chat formats (docs/formats.md#chat-formats): rendering conversation messages into prompt text, message by
 * message, so that a conversation's text is the concatenation of its messages' texts and a chat
 * can evaluate only what each turn adds. The format is chosen from the model (template text,
 * architecture, vocabulary) or by name. */
#ifndef TERN_CHAT_H
#define TERN_CHAT_H

#include <stdbool.h>

#include "../../scheduler/status.h"
#include "../gguf/gguf.h"
#include "../tokenizer/tokenizer.h"

enum tern_chat_format {
    TERN_CHAT_BITNET = 0,  /* 2B-4T: "System: "/"User: "/"Assistant: " + text + <|eot_id|> */
    TERN_CHAT_LLAMA3 = 1,  /* <|start_header_id|>role<|end_header_id|>\n\n + text + <|eot_id|> */
    TERN_CHAT_FALCON3 = 2, /* <|role|>\n + text + \n (assistant: text + <|endoftext|> + \n) */
    TERN_CHAT_COUNT
};

enum tern_chat_role { TERN_CHAT_SYSTEM = 0, TERN_CHAT_USER = 1, TERN_CHAT_ASSISTANT = 2 };

/* "bitnet", "llama3", "falcon3" (TERN_ERR_ARG, logged, for another name). */
tern_status tern_chat_format_from_name(const char *name, enum tern_chat_format *out);
const char *tern_chat_format_name(enum tern_chat_format f);

/* The model's format: from tokenizer.chat_template when it names one (<|start_header_id|>,
 * <|assistant|>, the 2B-4T marker BITNET), else the architecture (bitnet archs: bitnet), else the
 * vocabulary (<|assistant|>: falcon3), else llama3. tok may be NULL. */
enum tern_chat_format tern_chat_format_detect(const tern_gguf *g, const tern_tokenizer *tok);

/* The text of one message: the conversation start (BOS where the format writes it) when first,
 * the role header, the content (surrounding white space trimmed, as the Hugging Face templates
 * do) and the end of the message. malloc'd, NUL-terminated. */
char *tern_chat_render_message(enum tern_chat_format f, enum tern_chat_role role, const char *content,
                               bool first);
/* The end of an assistant message, without its content: appended after a generated reply. */
const char *tern_chat_assistant_end(enum tern_chat_format f);
/* The text that asks the model for an assistant reply. */
const char *tern_chat_generation_prompt(enum tern_chat_format f);

#endif
