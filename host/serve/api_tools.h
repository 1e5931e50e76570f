/* Function calling in tern's chat API (OpenAI's "tools", "tool_choice", "parallel_tool_calls"), for
 * any model: the tools are described to the model in a system message, and its reply is held by
 * JSON mode to one object, {"tool_calls": [{"<tool name>": {<arguments>}}, ...]} (each call one key,
 * its arguments following that tool's "parameters" schema) or, where tool_choice lets it answer in
 * text, {"response": "..."}. The server turns that object into OpenAI's message: tool_calls (ids,
 * arguments as JSON text, finish_reason "tool_calls") or content. Messages of role "tool" and
 * assistant messages with tool_calls go back into the prompt in the same form. */
#ifndef TERN_API_TOOLS_H
#define TERN_API_TOOLS_H

#include <jansson.h>
#include <stdbool.h>

#include "api_request.h"

/* What a request's tools ask of the reply (all NULL: no tool may be called). */
struct tern_api_tools {
    json_t *schema; /* the reply's JSON schema */
    char *system;   /* the tools and the reply's form, for the system message */
};

/* Parse body's tools, tool_choice and parallel_tool_calls into *t; on a client error fills *err and
 * returns false (t then holds nothing). */
bool tern_api_tools_parse(const json_t *body, struct tern_api_tools *t, struct tern_api_error *err);
void tern_api_tools_free(struct tern_api_tools *t);

/* The prompt text of message m, when it is a tool's result (role "tool": the call it answers named
 * from the assistant message before it in messages) or an assistant message with tool_calls: its
 * role in *role ("user" or "assistant") and malloc'd text; NULL for other messages, or with *why
 * set when it is malformed. */
char *tern_api_tool_message(const json_t *messages, size_t i, const char **role, const char **why);

/* A reply the model wrote under t's schema into OpenAI's message: tool_calls (a new array, each
 * call's id "call_" + id_base + its index) or *content (malloc'd). False when the text is no such
 * object (a reply cut short): the caller sends the text itself as the content. */
bool tern_api_tool_reply(const char *text, size_t len, const char *id_base, json_t **tool_calls,
                         char **content);

#endif
