/* Chat formats rendered against the expected strings of docs/formats.md#chat-formats (the Hugging Face
 * templates of 2B-4T, Llama-3 and Falcon3), the format chosen from a model, and a scripted two-turn `tern
 * chat` through a pseudo-terminal: Ctrl-C at the prompt keeps the session, and the second turn evaluates only
 * what it adds. */
#define _XOPEN_SOURCE 700
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "host/generate/chat.h"
#include "host/model/maker.h"
#include "host/tern.h"

static void expect_render(enum tern_chat_format f, const char *want) {
    static const struct {
        enum tern_chat_role role;
        const char *text;
    } msgs[4] = {{TERN_CHAT_SYSTEM, "Be brief."},
                 {TERN_CHAT_USER, " Hi!\n"},
                 {TERN_CHAT_ASSISTANT, "Hello."},
                 {TERN_CHAT_USER, "Who are you?"}};
    char got[1024] = "";
    for (int i = 0; i < 4; i++) {
        char *m = tern_chat_render_message(f, msgs[i].role, msgs[i].text, i == 0);
        CHECK(m != NULL);
        if (m)
            strncat(got, m, sizeof got - strlen(got) - 1);
        free(m);
    }
    strncat(got, tern_chat_generation_prompt(f), sizeof got - strlen(got) - 1);
    if (strcmp(got, want) != 0)
        harness_fail(__FILE__, __LINE__, "format %s:\n  expected [%s]\n  actual   [%s]",
                     tern_chat_format_name(f), want, got);
}

static void renderings(void) {
    expect_render(TERN_CHAT_BITNET, "<|begin_of_text|>System: Be brief.<|eot_id|>User: Hi!<|eot_id|>"
                                    "Assistant: Hello.<|eot_id|>User: Who are you?<|eot_id|>Assistant: ");
    expect_render(TERN_CHAT_LLAMA3,
                  "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\nWho are you?<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\n");
    expect_render(TERN_CHAT_FALCON3,
                  "<|system|>\nBe brief.\n<|user|>\n Hi!\n\n<|assistant|>\nHello.<|endoftext|>\n"
                  "<|user|>\nWho are you?\n<|assistant|>\n");
    CHECK(strcmp(tern_chat_assistant_end(TERN_CHAT_LLAMA3), "<|eot_id|>") == 0);
    enum tern_chat_format f = TERN_CHAT_BITNET;
    CHECK_STATUS(TERN_OK, tern_chat_format_from_name("falcon3", &f));
    CHECK_INT(TERN_CHAT_FALCON3, f);
    const enum tern_log_level level = tern_log_get_level();
    tern_log_set_level(TERN_LOG_COUNT); /* the expected error line stays out of the test output */
    CHECK_STATUS(TERN_ERR_ARG, tern_chat_format_from_name("chatml", &f));
    tern_log_set_level(level);
}

/* A vocabulary-only GGUF of an architecture and chat template (NULL: none). */
static enum tern_chat_format detect(const char *arch, const char *tmpl) {
    tern_gguf_writer *w;
    CHECK_STATUS(TERN_OK, tern_gguf_writer_create(&w));
    tern_gguf_writer_set_str(w, "general.architecture", arch);
    if (tmpl)
        tern_gguf_writer_set_str(w, "tokenizer.chat_template", tmpl);
    const char *path = test_tmp("chat-detect.gguf", 0);
    CHECK_STATUS(TERN_OK, tern_gguf_writer_write(w, path));
    tern_gguf_writer_free(w);
    tern_gguf *g = NULL;
    CHECK_STATUS(TERN_OK, tern_gguf_create(path, &g));
    enum tern_chat_format f = g ? tern_chat_format_detect(g, NULL) : TERN_CHAT_COUNT;
    tern_gguf_free(g);
    return f;
}

static void format_from_model(void) {
    /* the official 2B-4T template is a marker; its vocabulary is Llama-3's */
    CHECK_INT(TERN_CHAT_BITNET, detect("bitnet-b1.58", "{% BITNET marker %}"));
    CHECK_INT(TERN_CHAT_BITNET, detect("bitnet-25", NULL));
    CHECK_INT(TERN_CHAT_LLAMA3, detect("llama", "{{ '<|start_header_id|>' + message['role'] }}"));
    CHECK_INT(TERN_CHAT_FALCON3, detect("llama", "{{ '<|assistant|>\\n' }}"));
    CHECK_INT(TERN_CHAT_LLAMA3, detect("llama", NULL));
}

/* Read from fd into buf (appending) until `needle` occurs `count` times or 20 s pass. */
static size_t read_until(int fd, char *buf, size_t len, size_t cap, const char *needle, int count) {
    for (int waited = 0; waited < 200;) {
        int seen = 0;
        for (const char *p = buf; (p = strstr(p, needle)); p++)
            seen++;
        if (seen >= count)
            break;
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, 100) <= 0) {
            waited++;
            continue;
        }
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = 0;
    }
    return len;
}

static void two_turns_through_a_pty(void) {
    struct tern_maker_params p;
    tern_maker_preset("tiny", &p);
    const char *model = test_tmp("chat-tiny.gguf", 0);
    CHECK_STATUS(TERN_OK, tern_maker_write(&p, model));
    const char *tern = test_bin("tern", 1);
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    CHECK(master >= 0 && grantpt(master) == 0 && unlockpt(master) == 0);
    const char *slave_name = ptsname(master);
    CHECK(slave_name != NULL);
    if (master < 0 || !slave_name)
        return;
    pid_t pid = fork();
    if (pid == 0) {
        setsid();
        int slave = open(slave_name, O_RDWR); /* becomes the controlling terminal */
        dup2(slave, 0);
        dup2(slave, 1);
        dup2(slave, 2);
        close(master);
        setenv("TERN_LOG", "debug", 1);
        execl(tern, "tern", "chat", "-m", model, "-n", "6", "--temp", "0", "--system", "Be brief.",
              (char *)NULL);
        _exit(127);
    }
    static char out[1 << 16];
    size_t len = read_until(master, out, 0, sizeof out, "\n> ", 1);
    CHECK(write(master, "Hello there\n", 12) == 12);
    len = read_until(master, out, len, sizeof out, "\n> ", 2);
    /* Ctrl-C at the prompt: a new prompt, the session goes on */
    CHECK(write(master, "\x03", 1) == 1);
    len = read_until(master, out, len, sizeof out, "\n> ", 3);
    CHECK(write(master, "How are you?\n", 13) == 13);
    len = read_until(master, out, len, sizeof out, "\n> ", 4);
    CHECK(write(master, "/exit\n", 6) == 6);
    read_until(master, out, len, sizeof out, "\x01", 1); /* until the program closes the terminal */
    int status = -1;
    waitpid(pid, &status, 0);
    close(master);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* two turns; the second starts where the first left the context, evaluating only its own tokens */
    const char *t1 = strstr(out, "turn: "), *t2 = t1 ? strstr(t1 + 1, "turn: ") : NULL;
    int new1 = 0, pos1 = -1, ctx1 = 0, new2 = 0, pos2 = -1;
    CHECK(t1 && sscanf(t1, "turn: %d new tokens evaluated at position %d, reply %*d tokens, context %d",
                       &new1, &pos1, &ctx1) == 3);
    CHECK(t2 && sscanf(t2, "turn: %d new tokens evaluated at position %d", &new2, &pos2) == 2);
    CHECK_INT(0, pos1);
    CHECK_INT(ctx1, pos2);
    CHECK(new2 > 0 && new2 < pos2);
    if (harness_case_failed)
        fprintf(stderr, "  transcript:\n%s\n", out);
}

int main(void) {
    RUN(renderings);
    RUN(format_from_model);
    RUN(two_turns_through_a_pty);
    return harness_finish();
}
