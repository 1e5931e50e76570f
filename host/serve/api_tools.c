/* Function calling in the chat API (see api_tools.h). */
#include "api_tools.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_TOOLS = 64, MAX_CALLS = 8 };

/* OpenAI's rule for a function's name: 1 to 64 letters, digits, '_' and '-' */
static bool valid_name(const char *s) {
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') || (s[n] >= '0' && s[n] <= '9') ||
              s[n] == '_' || s[n] == '-'))
            return false;
    return n >= 1 && n <= 64;
}

/* A "$ref" in a tool's parameters that leaves its definitions: "#" or a pointer elsewhere in its
 * own document, which means another place once the tools are one schema. NULL when there is none. */
static const char *foreign_ref(const json_t *v) {
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            const char *r = foreign_ref(json_array_get(v, i));
            if (r)
                return r;
        }
        return NULL;
    }
    const char *key;
    const json_t *m;
    json_object_foreach((json_t *)v, key, m) {
        const char *s = json_string_value(m);
        if (!strcmp(key, "$ref") && s && strncmp(s, "#/$defs/", 8) != 0 &&
            strncmp(s, "#/definitions/", 14) != 0)
            return s;
        const char *r = json_is_object(m) || json_is_array(m) ? foreign_ref(m) : NULL;
        if (r)
            return r;
    }
    return NULL;
}

/* Move the definitions under key ("$defs" or "definitions") of a tool's parameters into defs, which
 * all the tools share: one name defined twice differently is refused. */
static bool merge_defs(json_t *params, const char *key, json_t *defs, const char *tool,
                       struct tern_api_error *err) {
    const json_t *own = json_object_get(params, key);
    if (!own)
        return true;
    if (!json_is_object(own))
        return tern_api_fail(err, 400, NULL, "tools", "tool '%s': '%s' must be an object", tool, key);
    const char *name;
    json_t *def;
    json_object_foreach((json_t *)own, name, def) {
        const json_t *had = json_object_get(defs, name);
        if (had && !json_equal(had, def))
            return tern_api_fail(err, 400, NULL, "tools", "the tools define '%s/%s' twice, differently", key,
                                 name);
        json_object_set(defs, name, def);
    }
    json_object_del(params, key);
    return true;
}

void tern_api_tools_free(struct tern_api_tools *t) {
    json_decref(t->schema);
    free(t->system);
    memset(t, 0, sizeof *t);
}

/* tool_choice: "auto" (mode 0), "required" (1), "none" (2), or one function by name (1, *forced) */
static bool tool_choice(const json_t *choice, int *mode, const char **forced, struct tern_api_error *err) {
    *mode = 0, *forced = NULL;
    if (!choice || json_is_null(choice))
        return true;
    const char *s = json_string_value(choice);
    if (s && (!strcmp(s, "auto") || !strcmp(s, "required") || !strcmp(s, "none"))) {
        *mode = s[0] == 'a' ? 0 : s[0] == 'r' ? 1 : 2;
        return true;
    }
    const char *type = json_string_value(json_object_get(choice, "type"));
    *forced = json_string_value(json_object_get(json_object_get(choice, "function"), "name"));
    *mode = 1;
    return (type && !strcmp(type, "function") && *forced) ||
           tern_api_fail(err, 400, NULL, "tool_choice",
                         "'tool_choice' must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", "
                         "\"function\": {\"name\": ...}}");
}

/* The system message's text: the tools (names, descriptions, parameters) and the reply's form */
static char *system_text(const json_t *listing, int mode, const char *forced, bool parallel) {
    char *tools = json_dumps(listing, JSON_COMPACT);
    if (!tools)
        return NULL;
    char form[512];
    if (forced)
        snprintf(form, sizeof form, "{\"tool_calls\": [{\"%s\": {<its arguments>}}]} to call %s", forced,
                 forced);
    else
        snprintf(form, sizeof form,
                 "{\"tool_calls\": [{\"<a tool's name>\": {<its arguments>}}%s]} to call %s%s",
                 parallel ? ", ..." : "", parallel ? "tools" : "a tool",
                 mode == 0 ? ", or {\"response\": \"<your reply>\"} to answer without them" : "");
    const char *head =
        "You can call these tools (each one's arguments follow its JSON schema, \"parameters\"):\n";
    const char *mid = "\nReply with one JSON object and nothing else: ";
    const size_t n = strlen(head) + strlen(tools) + strlen(mid) + strlen(form) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s%s%s%s.", head, tools, mid, form);
    free(tools);
    return s;
}

/* Parse, once tools is a list of at least one: the schema and the system text into t */
static bool build(const json_t *tools, int mode, const char *forced, bool parallel, struct tern_api_tools *t,
                  struct tern_api_error *err) {
    json_t *items = json_object(), *listing = json_array(), *defs = json_object(),
           *definitions = json_object();
    bool ok = items && listing && defs && definitions, found = !forced;
    for (size_t i = 0; ok && i < json_array_size(tools); i++) {
        const json_t *tool = json_array_get(tools, i), *fn = json_object_get(tool, "function");
        const char *type = json_string_value(json_object_get(tool, "type")),
                   *name = json_string_value(json_object_get(fn, "name"));
        const json_t *desc = json_object_get(fn, "description"), *params = json_object_get(fn, "parameters");
        if (!type || strcmp(type, "function") || !json_is_object(fn) || !name || !valid_name(name) ||
            (desc && !json_is_null(desc) && !json_is_string(desc)) ||
            (params && !json_is_null(params) && !json_is_object(params))) {
            ok = tern_api_fail(
                err, 400, NULL, "tools",
                "tool %zu must be {\"type\": \"function\", \"function\": {\"name\" (1 to 64 letters, "
                "digits, '_' or '-'), \"description\", \"parameters\" (a JSON schema)}}",
                i);
            break;
        }
        for (size_t k = 0; k < i; k++)
            if (!strcmp(name, json_string_value(json_object_get(
                                  json_object_get(json_array_get(tools, k), "function"), "name"))))
                ok = tern_api_fail(err, 400, NULL, "tools", "two tools are named '%s'", name);
        const char *ref = ok && json_is_object(params) ? foreign_ref(params) : NULL;
        if (ref)
            ok = tern_api_fail(err, 400, NULL, "tools",
                               "tool '%s': '$ref' '%s' is not supported in tool parameters (only "
                               "#/$defs/... and #/definitions/...)",
                               name, ref);
        json_t *p = json_is_object(params) ? json_deep_copy(params) : json_pack("{s:s}", "type", "object");
        ok = ok && p && merge_defs(p, "$defs", defs, name, err) &&
             merge_defs(p, "definitions", definitions, name, err);
        json_t *entry =
            ok ? json_pack("{s:s,s:O}", "name", name, "parameters", json_is_object(params) ? params : p)
               : NULL; /* as the client wrote them, with their definitions */
        if (entry && json_is_string(desc))
            json_object_set_new(entry, "description", json_string(json_string_value(desc)));
        ok = ok && entry && !json_array_append_new(listing, entry);
        if (ok && (!forced || !strcmp(forced, name))) {
            found = true;
            ok = !json_object_set(items, name, p);
        }
        json_decref(p);
    }
    if (ok && !found)
        ok = tern_api_fail(err, 400, NULL, "tool_choice",
                           "'tool_choice' names '%s', which 'tools' does not list", forced);
    json_t *calls = NULL;
    if (ok) {
        /* a call: one key, the tool's name, its value the arguments (one reading of the text, where a
         * union of {"name", "arguments"} objects would open one a tool) */
        json_t *item = json_pack("{s:s,s:O,s:i,s:i,s:b}", "type", "object", "properties", items,
                                 "minProperties", 1, "maxProperties", 1, "additionalProperties", 0);
        calls = json_pack("{s:s,s:{s:{s:s,s:o,s:i,s:i}},s:[s],s:b}", "type", "object", "properties",
                          "tool_calls", "type", "array", "items", item, "minItems", 1, "maxItems",
                          parallel ? MAX_CALLS : 1, "required", "tool_calls", "additionalProperties", 0);
    }
    t->schema = !calls      ? NULL
                : mode == 1 ? calls
                            : json_pack("{s:[o,{s:s,s:{s:{s:s}},s:[s],s:b}]}", "anyOf", calls, "type",
                                        "object", "properties", "response", "type", "string", "required",
                                        "response", "additionalProperties", 0);
    if (t->schema && json_object_size(defs))
        json_object_set(t->schema, "$defs", defs);
    if (t->schema && json_object_size(definitions))
        json_object_set(t->schema, "definitions", definitions);
    t->system = t->schema ? system_text(listing, mode, forced, parallel) : NULL;
    json_decref(items);
    json_decref(listing);
    json_decref(defs);
    json_decref(definitions);
    if (ok && (!t->schema || !t->system)) {
        tern_api_tools_free(t);
        return tern_api_fail(err, 500, NULL, NULL, "out of memory");
    }
    if (!ok)
        tern_api_tools_free(t);
    return ok;
}

bool tern_api_tools_parse(const json_t *body, struct tern_api_tools *t, struct tern_api_error *err) {
    memset(t, 0, sizeof *t);
    const json_t *tools = json_object_get(body, "tools"),
                 *parallel = json_object_get(body, "parallel_tool_calls");
    int mode;
    const char *forced;
    if (!tool_choice(json_object_get(body, "tool_choice"), &mode, &forced, err))
        return false;
    if (parallel && !json_is_null(parallel) && !json_is_boolean(parallel))
        return tern_api_fail(err, 400, NULL, "parallel_tool_calls",
                             "'parallel_tool_calls' must be a boolean");
    if (!tools || json_is_null(tools))
        return mode != 1 || tern_api_fail(err, 400, NULL, "tool_choice",
                                          "'tool_choice' asks for a tool, and there "
                                          "are no 'tools'");
    if (!json_is_array(tools) || json_array_size(tools) < 1 || json_array_size(tools) > MAX_TOOLS)
        return tern_api_fail(err, 400, NULL, "tools", "'tools' must be a list of 1 to %d tools", MAX_TOOLS);
    return mode == 2 || build(tools, mode, forced, !json_is_false(parallel), t, err);
}

char *tern_api_tool_message(const json_t *messages, size_t i, const char **role, const char **why) {
    const json_t *m = json_array_get(messages, i), *calls = json_object_get(m, "tool_calls");
    const char *r = json_string_value(json_object_get(m, "role"));
    json_t *v = NULL;
    if (r && !strcmp(r, "tool")) {
        const char *id = json_string_value(json_object_get(m, "tool_call_id"));
        const json_t *content = json_object_get(m, "content");
        if (!id || !json_is_string(content)) {
            *why = "a message of role 'tool' needs a 'tool_call_id' and a 'content' string";
            return NULL;
        }
        const char *name = NULL; /* the call's function, from the assistant message that made it */
        for (size_t k = i; k-- > 0 && !name;) {
            const json_t *c = json_object_get(json_array_get(messages, k), "tool_calls");
            for (size_t j = 0; j < json_array_size(c) && !name; j++)
                if (json_equal(json_object_get(json_array_get(c, j), "id"),
                               json_object_get(m, "tool_call_id")))
                    name = json_string_value(
                        json_object_get(json_object_get(json_array_get(c, j), "function"), "name"));
        }
        v = json_pack("{s:{s:s?,s:O}}", "tool_result", "name", name, "content", content);
        *role = "user";
    } else if (r && !strcmp(r, "assistant") && calls && !json_is_null(calls)) {
        json_t *list = json_array();
        for (size_t j = 0; list && j < json_array_size(calls); j++) {
            const json_t *fn = json_object_get(json_array_get(calls, j), "function");
            const char *name = json_string_value(json_object_get(fn, "name")),
                       *args = json_string_value(json_object_get(fn, "arguments"));
            if (!name || !args) {
                json_decref(list);
                *why = "each of an assistant message's 'tool_calls' needs a 'function' with a 'name' and "
                       "'arguments' (a string)";
                return NULL;
            }
            json_t *parsed = json_loads(args, 0, NULL); /* as the model wrote it; else the string */
            json_array_append_new(list, json_pack("{s:o}", name, parsed ? parsed : json_string(args)));
        }
        if (!json_is_array(calls) || !json_array_size(calls)) {
            json_decref(list);
            *why = "'tool_calls' must be a non-empty list";
            return NULL;
        }
        v = list ? json_pack("{s:o}", "tool_calls", list) : NULL;
        *role = "assistant";
    } else {
        return NULL;
    }
    char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    return text;
}

bool tern_api_tool_reply(const char *text, size_t len, const char *id_base, json_t **tool_calls,
                         char **content) {
    *tool_calls = NULL, *content = NULL;
    json_t *v = json_loadb(text, len, 0, NULL);
    const json_t *calls = json_object_get(v, "tool_calls"), *response = json_object_get(v, "response");
    if (json_is_string(response)) {
        *content = strdup(json_string_value(response));
    } else if (json_is_array(calls)) {
        *tool_calls = json_array();
        for (size_t i = 0; *tool_calls && i < json_array_size(calls); i++) {
            const json_t *c = json_array_get(calls, i); /* {name: arguments} */
            void *at = json_object_iter((json_t *)c);
            const char *name = at ? json_object_iter_key(at) : NULL;
            char id[96],
                *args = at ? json_dumps(json_object_iter_value(at), JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
            snprintf(id, sizeof id, "call_%s_%zu", id_base, i);
            if (name && args)
                json_array_append_new(*tool_calls,
                                      json_pack("{s:s,s:s,s:{s:s,s:s}}", "id", id, "type", "function",
                                                "function", "name", name, "arguments", args));
            free(args);
        }
    }
    json_decref(v);
    return *tool_calls || *content;
}
