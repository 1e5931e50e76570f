#!/usr/bin/env bash
# End-to-end checks of the tern CLI. Usage: test_cli.sh BIN_DIR DATA_DIR TMP_DIR
set -u
bin=$1 data=$2 tmp=$3
rm -rf "$tmp" && mkdir -p "$tmp"
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; [ $# -gt 1 ] && echo "     $2"; }

# expect_error NAME EXIT_CODE PATTERN -- COMMAND...: exit code, exactly one stderr line matching
# PATTERN, nothing on stdout.
expect_error() {
    local name=$1 code=$2 pattern=$3
    shift 4
    "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$? lines
    lines=$(wc -l <"$tmp/err")
    if [ "$rc" -ne "$code" ]; then bad "$name" "exit $rc, expected $code: $(head -c 300 "$tmp/err")"
    elif [ "$lines" -ne 1 ]; then bad "$name" "$lines stderr lines: $(head -c 500 "$tmp/err")"
    elif ! grep -q -- "$pattern" "$tmp/err"; then bad "$name" "stderr lacks '$pattern': $(cat "$tmp/err")"
    elif [ -s "$tmp/out" ]; then bad "$name" "unexpected stdout: $(head -c 200 "$tmp/out")"
    else ok "$name"; fi
}

tern=$bin/tern
maker=$bin/tern-make-model
vec=$data/vectors
model=$tmp/tiny.gguf

# --- the main path -----------------------------------------------------------------------------
if "$maker" --preset tiny --seed 3 -o "$model" 2>"$tmp/err" && [ -s "$model" ]; then ok make_model
else bad make_model "$(cat "$tmp/err")"; fi
if "$maker" --preset tiny --seed 3 --output "$tmp/tiny-long.gguf" 2>/dev/null && cmp -s "$model" "$tmp/tiny-long.gguf"
then ok make_model_output_flag; else bad make_model_output_flag; fi

"$tern" run -m "$model" -p "Hello there" -n 12 --temp 0 >"$tmp/g1" 2>"$tmp/e1"
rc=$?
"$tern" run -m "$model" -p "Hello there" -n 12 --temp 0 >"$tmp/g2" 2>/dev/null
if [ $rc -eq 0 ] && [ -s "$tmp/g1" ] && cmp -s "$tmp/g1" "$tmp/g2" && grep -q "generation 12 tokens" "$tmp/e1" &&
   grep -q "t/s" "$tmp/e1"; then ok run_greedy_repeatable
else bad run_greedy_repeatable "rc $rc: $(cat "$tmp/e1")"; fi

"$tern" run -m "$model" -p "Hello" -n 20 --temp 1.0 --seed 77 >"$tmp/s1" 2>/dev/null
"$tern" run -m "$model" -p "Hello" -n 20 --temp 1.0 --seed 77 >"$tmp/s2" 2>/dev/null
"$tern" run -m "$model" -p "Hello" -n 20 --temp 1.0 --seed 78 >"$tmp/s3" 2>/dev/null
if cmp -s "$tmp/s1" "$tmp/s2" && ! cmp -s "$tmp/s1" "$tmp/s3"; then ok run_seeded_sampling
else bad run_seeded_sampling; fi

# a context longer than the model's training context: one warning, and the run goes on
"$tern" run -m "$model" -p "Hello there" -n 12 --temp 0 -c 512 >"$tmp/g5" 2>"$tmp/err"
rc=$?
if [ $rc -eq 0 ] && cmp -s "$tmp/g1" "$tmp/g5" && [ "$(grep -c "warning:" "$tmp/err")" -eq 1 ] &&
   grep -q "context of 512 positions is longer than the 256 this model was trained on" "$tmp/err" &&
   ! grep -q "warning:" "$tmp/e1"; then ok run_ctx_past_training
else bad run_ctx_past_training "rc $rc: $(cat "$tmp/err")"; fi

printf 'Hello there' >"$tmp/prompt.txt"
"$tern" run -m "$model" -f "$tmp/prompt.txt" -n 12 --temp 0 >"$tmp/g3" 2>/dev/null
if cmp -s "$tmp/g1" "$tmp/g3"; then ok run_prompt_file; else bad run_prompt_file; fi
printf 'Hello there' | "$tern" run -m "$model" -f - -n 12 --temp 0 >"$tmp/g6" 2>/dev/null
if cmp -s "$tmp/g1" "$tmp/g6"; then ok run_prompt_stdin; else bad run_prompt_stdin; fi

"$tern" run -m "$model" -p "Hello there" -n 12 --temp 0 --echo >"$tmp/g4" 2>/dev/null
if [ "$(cat "$tmp/g4")" = "Hello there$(cat "$tmp/g1")" ]; then ok run_echo; else bad run_echo; fi

# prompt lookup: the same text with drafts as without, and the count of drafts taken
"$tern" run -m "$vec/mini-b158-i2s.gguf" -p "The capital of France is" -n 64 --temp 0 --device cpu >"$tmp/l0" 2>/dev/null
"$tern" run -m "$vec/mini-b158-i2s.gguf" -p "The capital of France is" -n 64 --temp 0 --device cpu --lookup 4 \
    >"$tmp/l4" 2>"$tmp/err"
if cmp -s "$tmp/l0" "$tmp/l4" && grep -q "lookup: [1-9][0-9]* of [1-9][0-9]* drafts taken" "$tmp/err"; then ok run_lookup
else bad run_lookup "$(cat "$tmp/err")"; fi
expect_error run_lookup_range 2 "lookup" -- "$tern" run -m "$model" -p "Hi" --lookup 8
# --logit-bias: +100 on a token makes greedy decoding take it every time, of two boosted tokens the
# one boosted more wins (by 50), and biases of one token add up (+100 and -100: the output without them);
# an id outside the vocabulary or a bias past 100 is a usage error
h=$("$tern" tokenize -m "$model" --ids --no-bos -p "H" 2>/dev/null | tr -d '[]')
i=$("$tern" tokenize -m "$model" --ids --no-bos -p "I" 2>/dev/null | tr -d '[]')
lb() { "$tern" run -m "$model" -p "Hello" -n 3 --temp 0 "$@" 2>/dev/null; }
if [ "$(lb --logit-bias "$h+100")" = "HHH" ] && [ "$(lb --logit-bias "$h+50" --logit-bias "$i+100")" = "III" ] &&
   [ "$(lb --logit-bias "$h+100" --logit-bias "$i+50")" = "HHH" ] &&
   [ "$(lb --logit-bias "$h+100" --logit-bias "$h-100" | xxd -p)" = "$(lb | xxd -p)" ]; then ok run_logit_bias
else bad run_logit_bias "h=$h i=$i: $(lb --logit-bias "$h+50" --logit-bias "$i+100" | xxd -p)"; fi
expect_error run_logit_bias_bad_id 2 "not in the model's vocabulary" -- "$tern" run -m "$model" -p "Hi" --logit-bias 99999+1
expect_error run_logit_bias_bad_value 2 "is not a number in \[-100, 100\]" -- "$tern" run -m "$model" -p "Hi" --logit-bias 5+200

# --json: a reply is one JSON object. With '"' and '}' favoured, run's closes, parses and ends the
# generation; chat's two replies are one object each (node reads them); without the biases the
# reply still begins with '{', where the model's own first byte is not one
q=$("$tern" tokenize -m "$vec/mini-b158-i2s.gguf" --ids --no-bos -p '"' 2>/dev/null | tr -d '[]')
c=$("$tern" tokenize -m "$vec/mini-b158-i2s.gguf" --ids --no-bos -p '}' 2>/dev/null | tr -d '[]')
objects='let t = require("fs").readFileSync(0, "utf8"), n = 0;
  while (t.length) { let i = 1; for (; i <= t.length; i++) { try { const v = JSON.parse(t.slice(0, i));
    if (v && typeof v === "object" && !Array.isArray(v)) break; } catch (e) {} }
    if (i > t.length) process.exit(1); n++; t = t.slice(i).replace(/^\n/, ""); }
  console.log(n);'
"$tern" run -m "$vec/mini-b158-i2s.gguf" -p "JSON:" -n 200 --temp 1 --seed 2 --json --logit-bias "$q+20" \
    --logit-bias "$c+25" >"$tmp/j1" 2>"$tmp/err"
printf 'Hi\nMore\n' | "$tern" chat -m "$vec/mini-b158-i2s.gguf" -n 200 --temp 1 --seed 2 --json \
    --logit-bias "$q+20" --logit-bias "$c+25" >"$tmp/j2" 2>/dev/null
"$tern" run -m "$vec/mini-b158-i2s.gguf" -p "JSON:" -n 8 --temp 0 --json >"$tmp/j3" 2>/dev/null
"$tern" run -m "$vec/mini-b158-i2s.gguf" -p "JSON:" -n 1 --temp 0 >"$tmp/j4" 2>/dev/null
if [ "$(node -e "$objects" <"$tmp/j1")" = 1 ] && grep -q "stopped at end of generation" "$tmp/err" &&
   [ "$(node -e "$objects" <"$tmp/j2")" = 2 ] && [ "$(head -c 1 "$tmp/j3")" = "{" ] &&
   [ "$(head -c 1 "$tmp/j4")" != "{" ]; then ok run_json
else bad run_json "$(cat "$tmp/j1" "$tmp/j2" "$tmp/j3" "$tmp/err")"; fi
# --json-schema and --json-schema-file: the object has the schema's keys, in order, of its types;
# a schema outside the subset, text that is not JSON and a missing file are usage errors
schema='{"type": "object", "properties": {"city": {"type": "string"}, "pop": {"type": "integer"},
  "big": {"type": "boolean"}}, "required": ["city", "pop", "big"], "additionalProperties": false}'
printf '%s' "$schema" >"$tmp/schema.json"
"$tern" run -m "$vec/mini-b158-i2s.gguf" -p "JSON:" -n 200 --temp 1 --seed 2 --json-schema "$schema" \
    --logit-bias "$q+15" >"$tmp/j5" 2>/dev/null
"$tern" run -m "$vec/mini-b158-i2s.gguf" -p "JSON:" -n 200 --temp 1 --seed 2 --json-schema-file "$tmp/schema.json" \
    --logit-bias "$q+15" >"$tmp/j6" 2>/dev/null
city='const v = JSON.parse(require("fs").readFileSync(0, "utf8"));
  process.exit(JSON.stringify(Object.keys(v)) === "[\"city\",\"pop\",\"big\"]" && typeof v.city === "string" &&
               Number.isInteger(v.pop) && typeof v.big === "boolean" ? 0 : 1);'
if node -e "$city" <"$tmp/j5" && cmp -s "$tmp/j5" "$tmp/j6"; then ok run_json_schema
else bad run_json_schema "$(cat "$tmp/j5" "$tmp/j6")"; fi
expect_error run_json_schema_refused 2 "the keyword 'multipleOf' is not supported" -- "$tern" run -m "$model" -p "Hi" \
    --json-schema '{"type": "object", "properties": {"a": {"type": "integer", "multipleOf": 2}}}'
expect_error run_json_schema_pattern 2 "backreferences are not supported" -- "$tern" run -m "$model" -p "Hi" \
    --json-schema '{"type": "object", "properties": {"a": {"type": "string", "pattern": "(a)\\1"}}}'
expect_error run_json_schema_not_json 2 "option --json-schema: not JSON" -- "$tern" run -m "$model" -p "Hi" \
    --json-schema '{"type":'
expect_error run_json_schema_no_file 2 "option --json-schema-file: unable to open" -- "$tern" run -m "$model" -p "Hi" \
    --json-schema-file "$tmp/missing.json"

# bitnet.cpp's I2_S file, greedy: the continuation starts with bitnet.cpp's bytes "($_id"
"$tern" run -m "$vec/mini-b158-i2s.gguf" -p "The capital of France is" -n 16 --temp 0 >"$tmp/v" 2>/dev/null
if [ "$(head -c 5 "$tmp/v")" = '($_id' ]; then ok run_conformance_vector; else bad run_conformance_vector "$(xxd -p "$tmp/v")"; fi

# chat from a pipe: one reply line per message, the KV cache kept across turns, /reset starts over
printf 'Hello there\nHow are you?\n/reset\nHello there\n' |
    TERN_LOG=debug "$tern" chat -m "$model" -n 6 --temp 0 >"$tmp/chat" 2>"$tmp/err"
rc=$?
if [ $rc -eq 0 ] && [ "$(wc -l <"$tmp/chat")" -eq 3 ] && [ "$(sed -n 1p "$tmp/chat")" = "$(sed -n 3p "$tmp/chat")" ] &&
   grep -q "turn: .* at position 0," "$tmp/err" && grep -q "new conversation" "$tmp/err" &&
   [ "$(grep -c "at position 0," "$tmp/err")" -eq 2 ]; then ok chat_piped
else bad chat_piped "rc $rc: $(cat "$tmp/chat" "$tmp/err")"; fi
# a line that ends with a backslash continues the message: one turn, with a line break where the
# backslash was (so more tokens than the message on one line), and a backslash at the end of input
# ends the message
printf 'Hello \\\nthere\n' | TERN_LOG=debug "$tern" chat -m "$model" -n 4 --temp 0 >"$tmp/chat" 2>"$tmp/err"
rc1=$?
printf 'Hello there\nHi\\' | TERN_LOG=debug "$tern" chat -m "$model" -n 4 --temp 0 >"$tmp/chat1" 2>"$tmp/err1"
rc2=$?
two=$(grep "turn: " "$tmp/err" | sed 's/ new tokens.*//; s/.*turn: //')
one=$(grep "turn: " "$tmp/err1" | sed -n 1p | sed 's/ new tokens.*//; s/.*turn: //')
if [ $rc1 -eq 0 ] && [ $rc2 -eq 0 ] && [ "$(grep -c "turn: " "$tmp/err")" -eq 1 ] && [ "$two" -gt "$one" ] &&
   [ "$(grep -c "turn: " "$tmp/err1")" -eq 2 ]; then ok chat_continued_line
else bad chat_continued_line "rc $rc1/$rc2, $two vs $one tokens: $(cat "$tmp/err" "$tmp/err1")"; fi
# /system TEXT starts a conversation with that system message (as --system does), /reset keeps it,
# /system alone drops it: each turn is evaluated from position 0 with the tokens that says
printf 'Hi\n/system Be terse.\nHi\n/reset\nHi\n/system\nHi\n' |
    TERN_LOG=debug "$tern" chat -m "$model" -n 4 --temp 0 >"$tmp/chat" 2>"$tmp/err"
rc=$?
printf 'Hi\n' | TERN_LOG=debug "$tern" chat -m "$model" -n 4 --temp 0 --system "Be terse." >/dev/null 2>"$tmp/err1"
counts=$(grep "turn: " "$tmp/err" | sed 's/ new tokens.*//; s/.*turn: //' | tr '\n' ' ')
flag=$(grep "turn: " "$tmp/err1" | sed 's/ new tokens.*//; s/.*turn: //')
read -r t1 t2 t3 t4 more <<<"$counts"
if [ $rc -eq 0 ] && [ -n "$t4" ] && [ -z "$more" ] && [ "$(grep -c "at position 0," "$tmp/err")" -eq 4 ] &&
   [ "$t2" -gt "$t1" ] && [ "$t2" = "$t3" ] && [ "$t4" = "$t1" ] && [ "$t2" = "$flag" ]; then ok chat_system_command
else bad chat_system_command "rc $rc, counts $counts, --system $flag: $(cat "$tmp/err")"; fi
# a message that cannot fit: one error line, the conversation goes on, exit 1
printf 'x%.0s' $(seq 1 300) >"$tmp/long"
printf '\nHi\n' >>"$tmp/long"
"$tern" chat -m "$model" -n 4 --temp 0 -c 64 <"$tmp/long" >"$tmp/chat" 2>"$tmp/err"
rc=$?
if [ $rc -eq 1 ] && [ "$(grep -c "error:" "$tmp/err")" -eq 1 ] && grep -q "more than the context of 64" "$tmp/err" &&
   [ "$(wc -l <"$tmp/chat")" -eq 1 ]; then ok chat_message_too_long
else bad chat_message_too_long "rc $rc: $(cat "$tmp/chat" "$tmp/err")"; fi
# ... and leaves the conversation as it was: the next message is evaluated after the cached turns,
# and when the context fills later, the turns dropped then include the first one (each notice
# drops at least one turn)
{ printf 'Hello there\n'; printf 'x%.0s' $(seq 1 300); printf '\nHow are you?\n%.0s' 1 2 3; } >"$tmp/long2"
TERN_LOG=debug "$tern" chat -m "$model" -n 4 --temp 0 -c 128 <"$tmp/long2" >"$tmp/chat" 2>"$tmp/err"
rc=$?
if [ $rc -eq 1 ] && [ "$(grep -c "error:" "$tmp/err")" -eq 1 ] && [ "$(grep -c "turn: " "$tmp/err")" -eq 4 ] &&
   grep "turn: " "$tmp/err" | sed -n 2p | grep -q "at position [1-9]" && grep -q "dropped the 1 oldest turn," "$tmp/err" &&
   ! grep -q "dropped the 0 " "$tmp/err"
then ok chat_too_long_keeps_history
else bad chat_too_long_keeps_history "rc $rc: $(cat "$tmp/chat" "$tmp/err")"; fi
expect_error chat_bad_format 2 "unknown chat format 'chatml'" -- "$tern" chat -m "$model" --chat-format chatml

"$tern" info "$model" >"$tmp/info" 2>"$tmp/err"
if [ $? -eq 0 ] && grep -q "architecture: bitnet-b1.58" "$tmp/info" && grep -q "blk.1.ffn_down.weight" "$tmp/info" &&
   grep -q "KV cache" "$tmp/info" && grep -q "certified head's int8 copy" "$tmp/info" &&
   grep -q "output_norm.weight  *F32  *\[256\]  *1024$" "$tmp/info" &&
   grep -q "token_embd.weight  *F16  *\[256, 512\]  *262144$" "$tmp/info"; then ok info
else bad info "$(cat "$tmp/err")"; fi

out=$("$tern" tokenize -m "$vec/mini-b158-i2s.gguf" -p "The capital of France is" --ids 2>&1)
if [ "$out" = "[998, 791, 272, 391, 275, 278, 315, 435, 81, 685, 374]" ]; then ok tokenize_ids
else bad tokenize_ids "$out"; fi
out=$("$tern" tokenize -m "$vec/mini-b158-i2s.gguf" -p "<|begin_of_text|>The capital" --ids 2>&1)
if [ "$out" = "[998, 791, 272, 391, 275, 278]" ]; then ok tokenize_bos_once
else bad tokenize_bos_once "$out"; fi
# id 0 ("!") is a token too, whole and as a BPE piece of a word the vocabulary lacks ("!?!")
out=$("$tern" tokenize -m "$vec/mini-b158-i2s.gguf" -p '!' --ids --no-bos 2>&1)
out2=$("$tern" tokenize -m "$vec/mini-b158-i2s.gguf" -p '!?!' --ids --no-bos 2>&1)
if [ "$out" = "[0]" ] && [ "$out2" = "[0, 30, 0]" ]; then ok tokenize_id_zero; else bad tokenize_id_zero "$out $out2"; fi
out=$("$tern" tokenize -m "$vec/mini-b158-i2s.gguf" -p "1, 2" 2>&1)
if echo "$out" | grep -q "16 -> '1'" && echo "$out" | grep -q "220 -> ' '"; then ok tokenize_pieces
else bad tokenize_pieces "$out"; fi

# perplexity: running values and a final estimate; the TQ2_0 and TQ1_0 files of one model agree to
# the digit; bad input gets one error line
seq 1 600 | tr '\n' ' ' >"$tmp/ppl.txt"
"$tern" perplexity -m "$vec/mini-bitnet-tq2.gguf" -f "$tmp/ppl.txt" -c 128 --chunks 3 --device cpu >"$tmp/p1" 2>"$tmp/err"
rc=$?
"$tern" perplexity -m "$vec/mini-bitnet-tq1.gguf" -f "$tmp/ppl.txt" -c 128 --chunks 3 --device cpu >"$tmp/p2" 2>/dev/null
if [ $rc -eq 0 ] && grep -q '^\[1\][0-9.e+]*,\[2\][0-9.e+]*,\[3\][0-9.e+]*,$' "$tmp/p1" &&
   grep -q '^Final estimate: PPL = [0-9.e+]* +/- [0-9.e+]*$' "$tmp/p1" && cmp -s "$tmp/p1" "$tmp/p2" &&
   grep -q "3 chunks of 128, 63 scored in each" "$tmp/err"; then ok perplexity
else bad perplexity "rc $rc: $(cat "$tmp/p1" "$tmp/p2" "$tmp/err")"; fi
expect_error perplexity_needs_file 2 "needs a model and a text" -- "$tern" perplexity -m "$vec/mini-bitnet-tq2.gguf"
expect_error perplexity_short_text 2 "fewer than one chunk of 4096" -- \
    "$tern" perplexity -m "$vec/mini-bitnet-tq2.gguf" -f "$tmp/ppl.txt" -c 4096 --device cpu
expect_error perplexity_bad_chunks 2 "chunks" -- "$tern" perplexity -m "$vec/mini-bitnet-tq2.gguf" -f "$tmp/ppl.txt" --chunks 0
expect_error perplexity_tiny_chunk 2 "at least 16 tokens" -- "$tern" perplexity -m "$vec/mini-bitnet-tq2.gguf" -f "$tmp/ppl.txt" -c 8
expect_error perplexity_missing_file 1 "nope.txt" -- "$tern" perplexity -m "$vec/mini-bitnet-tq2.gguf" -f "$tmp/nope.txt"

# bench: llama-bench style table, depth, JSON, random shapes
"$tern" bench -m "$model" -p 8 -n 4 -r 2 >"$tmp/b1" 2>"$tmp/err"
if [ $? -eq 0 ] && grep -q "| *pp8 |" "$tmp/b1" && grep -q "| *tg4 |" "$tmp/b1" && grep -q "GB/s (" "$tmp/b1"; then
    ok bench_table
else bad bench_table "$(cat "$tmp/b1" "$tmp/err")"; fi
"$tern" bench -m "$model" -p 8 -n 4 -d 16 -r 1 >"$tmp/b2" 2>"$tmp/err"
if [ $? -eq 0 ] && grep -q "pp8 @ d16" "$tmp/b2" && grep -q "tg4 @ d16" "$tmp/b2"; then ok bench_depth
else bad bench_depth "$(cat "$tmp/b2" "$tmp/err")"; fi
"$tern" bench -m "$model" -p 8 -n 0 -d 0 -r 1 >"$tmp/b4" 2>"$tmp/err"
if [ $? -eq 0 ] && grep -q "| *pp8 |" "$tmp/b4" && ! grep -q "tg" "$tmp/b4"; then ok bench_depth_zero
else bad bench_depth_zero "$(cat "$tmp/b4" "$tmp/err")"; fi
"$tern" bench -m "$model" -p 4,8 -n 0,2 -r 3 >"$tmp/b5" 2>"$tmp/err"
if [ $? -eq 0 ] && grep -q "| *pp4 |" "$tmp/b5" && grep -q "| *pp8 |" "$tmp/b5" && grep -q "| *tg2 |" "$tmp/b5" &&
   grep -q "min / median" "$tmp/b5" && grep -q "GMAC/s (" "$tmp/b5" && grep -q "^compute probe" "$tmp/b5"; then
    ok bench_size_lists
else bad bench_size_lists "$(cat "$tmp/b5" "$tmp/err")"; fi
"$tern" bench --shape tiny --type tq1_0 --head q8_0 -p 8 -n 0 -r 1 --json >"$tmp/b3" 2>"$tmp/err"
if [ $? -eq 0 ] && head -c 1 "$tmp/b3" | grep -q "\[" && grep -q '"test": "pp8"' "$tmp/b3" &&
   grep -q "TQ1_0, Q8_0 head" "$tmp/b3" && grep -q '"median": [0-9]' "$tmp/b3" && grep -q '"samples": \[[0-9.]*\]' "$tmp/b3" &&
   grep -q '"gemm_gmac_per_s": [1-9]' "$tmp/b3"; then ok bench_shape_json
else bad bench_shape_json "$(cat "$tmp/b3" "$tmp/err")"; fi

for cmd in run chat info tokenize bench convert; do
    if "$tern" $cmd --help | grep -q "Usage: tern $cmd"; then ok "help_$cmd"; else bad "help_$cmd"; fi
done

# --- bad input ---------------------------------------------------------------------------------
expect_error unknown_command 2 "unknown command 'frobnicate'" -- "$tern" frobnicate
expect_error unknown_flag 2 "unknown option '--bogus'" -- "$tern" run -m "$model" -p x --bogus
expect_error bad_flag_value 2 "option -n" -- "$tern" run -m "$model" -p x -n many
expect_error missing_flag_value 2 "needs a value" -- "$tern" run -m "$model" -p
expect_error no_prompt 2 "exactly one of -p" -- "$tern" run -m "$model"
expect_error convert_no_output 2 "needs a Hugging Face folder and -o" -- "$tern" convert "$tmp"
expect_error convert_bad_type 2 "option --type: 'i8'" -- "$tern" convert "$tmp" -o "$tmp/c.gguf" --type i8
expect_error convert_no_config 1 "$tmp/config.json: cannot read" -- "$tern" convert "$tmp" -o "$tmp/c.gguf"
if [ -e "$tmp/c.gguf" ]; then bad convert_no_output_file; else ok convert_no_output_file; fi
echo '{}' >"$tmp/config.json"
expect_error convert_over_input 2 "would replace a file of the checkpoint" -- "$tern" convert "$tmp" -o "$tmp/../$(basename "$tmp")/config.json"
if [ "$(cat "$tmp/config.json")" = '{}' ]; then ok convert_input_kept; else bad convert_input_kept; fi
rm -f "$tmp/config.json"
expect_error bad_temp 2 "option --temp" -- "$tern" run -m "$model" -p x --temp -1
expect_error missing_model 1 "$tmp/nope.gguf" -- "$tern" run -m "$tmp/nope.gguf" -p x
expect_error missing_prompt_file 1 "$tmp/nope.txt" -- "$tern" run -m "$model" -f "$tmp/nope.txt"
expect_error not_a_model 1 "prompt.txt" -- "$tern" info "$tmp/prompt.txt"
# info describes every well-formed GGUF: F16 linear weights run (ternarized at load); a file tern
# cannot run (here a vocabulary-only file) is described with the reason, exit 0
"$tern" info "$vec/mini-b158-f16.gguf" >"$tmp/info" 2>"$tmp/err"
if [ $? -eq 0 ] && grep -q "^runs: yes; its 14 F32/F16/BF16 linear weights are already ternary" "$tmp/info" &&
   grep -q "blk.1.ffn_down.weight *F16" "$tmp/info"; then ok info_f16_linears
else bad info_f16_linears "$(cat "$tmp/info" "$tmp/err")"; fi
"$maker" --vocab-only -o "$tmp/vocab.gguf" 2>/dev/null
"$tern" info "$tmp/vocab.gguf" >"$tmp/info" 2>"$tmp/err"
if [ $? -eq 0 ] && grep -q "^runs: no: .*missing metadata key bitnet-b1.58.block_count" "$tmp/info" && [ ! -s "$tmp/err" ]; then
    ok info_not_runnable
else bad info_not_runnable "$(cat "$tmp/info" "$tmp/err")"; fi
long=$(printf 'word %.0s' $(seq 1 200))
expect_error prompt_too_long 1 "context" -- "$tern" run -m "$model" -c 16 -p "$long"
expect_error prompt_too_long_echo 1 "(raise -c)" -- "$tern" run -m "$model" -c 16 -p "$long" --echo
expect_error bad_isa 1 "TERN_CPU_ISA=bogus" -- env TERN_CPU_ISA=bogus "$tern" run -m "$model" -p x -n 1
expect_error bad_device 2 "unknown device" -- "$tern" run -m "$model" -p x --device gpu7
expect_error bench_no_model 2 "exactly one of -m" -- "$tern" bench -p 8
"$tern" bench -m "$model" --parallel 1,2 -n 4 -r 1 >"$tmp/b5" 2>"$tmp/err"
if [ $? -eq 0 ] && grep -q "| *tg4 x1 |" "$tmp/b5" && grep -q "| *tg4 x2 |" "$tmp/b5"; then ok bench_parallel
else bad bench_parallel "$(cat "$tmp/b5" "$tmp/err")"; fi
"$tern" bench -m "$model" --parallel 1,2 -n 4 -d 20 -r 1 >"$tmp/b6" 2>"$tmp/err"
if [ $? -eq 0 ] && grep -q "| *tg4 @ d20 x1 |" "$tmp/b6" && grep -q "| *tg4 @ d20 x2 |" "$tmp/b6"; then
    ok bench_parallel_depth
else bad bench_parallel_depth "$(cat "$tmp/b6" "$tmp/err")"; fi
# --parallel rows: run (head mode), -n size, stream count, in the lists' order, each with its -r samples
"$tern" bench -m "$model" --parallel 2,1 -n 4,2 -r 2 --head-mode full,certified --json >"$tmp/b7" 2>"$tmp/err"
rows=$(sed -n 's/.*"head_mode": "\([a-z]*\)".*"test": "\([^"]*\)".*"samples": \[[0-9.]*, [0-9.]*\].*/\1 \2/p' "$tmp/b7" | tr '\n' ';')
if [ "$rows" = "full tg4 x2;full tg4 x1;full tg2 x2;full tg2 x1;certified tg4 x2;certified tg4 x1;certified tg2 x2;certified tg2 x1;" ]; then
    ok bench_parallel_rows
else bad bench_parallel_rows "$rows $(cat "$tmp/b7" "$tmp/err")"; fi
expect_error bench_parallel_no_gen 2 "--parallel measures generation" -- "$tern" bench -m "$model" --parallel 2 -n 0
expect_error bench_parallel_too_many 2 "at most 16 stream counts" -- "$tern" bench -m "$model" --parallel 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17
for list in '' cpu,; do
    expect_error "bench_device_list_bad_$list" 2 "option --device" -- "$tern" bench -m "$model" --device "$list"
done
for list in 0 65 '1;2' 1, ,1 x; do
    expect_error "bench_parallel_bad_$list" 2 "option --parallel" -- "$tern" bench -m "$model" --parallel "$list"
done
expect_error bench_nothing 2 "nothing to measure" -- "$tern" bench -m "$model" -p 0 -n 0
expect_error bench_bad_depth 2 "option -d" -- "$tern" bench -m "$model" -d -3
expect_error bench_prompt_too_long 2 "option -p" -- "$tern" bench -m "$model" -p 65537
expect_error bench_type_with_file 2 "go with --shape" -- "$tern" bench -m "$model" --head q6_k
expect_error bench_bad_head 2 "not a valid type" -- "$tern" bench --shape tiny --head q5_x
expect_error bench_bad_shape 2 "unknown model preset .huge." -- "$tern" bench --shape huge -p 8
expect_error devices_bad_shape 2 "unknown model preset .huge." -- "$tern" devices --probe --shape huge
expect_error maker_unwritable 1 "$tmp/no/such/dir/x.gguf" -- "$maker" --preset tiny -o "$tmp/no/such/dir/x.gguf"
if ls "$tmp/no/such/dir" >/dev/null 2>&1; then bad maker_no_partial_file; else ok maker_no_partial_file; fi

# --- one error line per failure class, nothing on stdout ------------------------------------------
# allocation failure: an address-space limit (RLIMIT_AS) the prompt batch's scratch cannot fit in
# (60001 tokens need ~0.55 GB; the process and its 64 MiB KV cache fit in 400 MB)
# (AddressSanitizer reserves terabytes of shadow memory, so a sanitizer build cannot run under the
# limit at all: the release build covers this case there)
head -c 60000 /dev/zero | tr '\0' 'a' | sed 's/aa/ab/g' >"$tmp/big.txt"
# (a model trained on 2^20 positions, so that these contexts draw no warning about their length)
"$maker" --preset tiny --seed 3 --ctx 1048576 -o "$tmp/long-ctx.gguf" 2>/dev/null
if bash -c 'ulimit -v 400000 && exec "$@"' _ "$tern" run --help >/dev/null 2>&1; then
    expect_error out_of_memory 1 "out of memory" -- bash -c 'ulimit -v 400000 && exec "$@"' _ \
        "$tern" run -m "$tmp/long-ctx.gguf" -f "$tmp/big.txt" -c 65536 -n 1 -t 1 --device cpu
    # a KV cache that cannot be allocated: one line (the device's), not a second from the session
    expect_error kv_out_of_memory 1 "KV cache" -- bash -c 'ulimit -v 400000 && exec "$@"' _ \
        "$tern" run -m "$tmp/long-ctx.gguf" -p x -c 1000000 -n 1 -t 1 --device cpu
else
    echo "skip out_of_memory: this build cannot run under an address-space limit (sanitizers)"
fi
# Ctrl-C while tokens flow: the run stops, reports, and exits 130 without an error line (greedy
# "Hello there" runs 6775 tokens on this model before its end token; the scalar kernels take seconds)
# (job control on: a script's background job would otherwise start with SIGINT ignored, and tern
# keeps it so)
set -m
TERN_CPU_ISA=scalar "$tern" run -m "$tmp/long-ctx.gguf" -p "Hello there" -n -1 -c 20000 --temp 0 --device cpu \
    >"$tmp/int_out" 2>"$tmp/err" &
pid=$!
set +m
for i in $(seq 200); do [ -s "$tmp/int_out" ] && break; sleep 0.05; done
kill -INT $pid
wait $pid
rc=$?
if [ $rc -eq 130 ] && grep -q "stopped: interrupted" "$tmp/err" && ! grep -q "error" "$tmp/err"; then
    ok run_interrupted
else bad run_interrupted "rc $rc: $(cat "$tmp/err")"; fi
expect_error missing_cl_device 1 "99" -- "$tern" run -m "$model" -p x -n 1 --device cl:99
expect_error bad_env_device 2 "TERN_DEVICE: unknown device 'bogus'" -- env TERN_DEVICE=bogus "$tern" run -m "$model" -p x -n 1
TERN_LOG=loud "$tern" run -m "$model" -p x -n 1 --temp 0 >/dev/null 2>"$tmp/err"
rc=$?
if [ $rc -eq 0 ] && [ "$(grep -c "warning: TERN_LOG=loud is not a level" "$tmp/err")" -eq 1 ]; then ok bad_env_log
else bad bad_env_log "rc $rc: $(cat "$tmp/err")"; fi
expect_error bad_pre 1 "bogus" -- "$tern" run -m "$model" -p x -n 1 --pre bogus
expect_error tokenize_bad_pre 1 "bogus" -- "$tern" tokenize -m "$model" -p x --pre bogus

# --- the reference documents every command, flag and environment variable the help lists ---------
# (a flag counts as documented where docs/cli.md writes it as code: "`--flag", "`-x, --flag" or
# "[--flag" in a usage line)
docs=$data/../../docs/cli.md
documented() { grep -qE -- "(\`|, |\[)$1( |\`|\]|,|=|\$)" "$docs"; }
undocumented=""
commands=$("$tern" --help 2>&1 | sed -n '/^Commands:/,/^$/p' | awk 'NF > 1 {print $1}')
[ -n "$commands" ] || undocumented="(no commands in tern --help)"
for c in $commands; do
    [ "$c" = help ] || [ "$c" = version ] && continue
    grep -q "^## tern $c\$" "$docs" || undocumented="$undocumented $c"
    "$tern" "$c" --help >"$tmp/help" 2>&1 || undocumented="$undocumented $c(--help failed)"
    for f in $(grep -oE '(^|[ ,[(])--?[a-zA-Z][a-zA-Z0-9-]*' "$tmp/help" | sed 's/^[ ,[(]//' | sort -u); do
        documented "$f" || undocumented="$undocumented $c:$f"
    done
done
"$maker" --help >"$tmp/help" 2>&1
for f in $(grep -oE '(^|[ ,[(])--?[a-zA-Z][a-zA-Z0-9-]*' "$tmp/help" | sed 's/^[ ,[(]//' | sort -u); do
    documented "$f" || undocumented="$undocumented tern-make-model:$f"
done
for v in $("$tern" --help 2>&1 | grep -oE 'TERN_[A-Z_]+' | sort -u); do
    grep -q "^| \`$v\` |" "$docs" || undocumented="$undocumented $v"
done
documented --no-such-flag && undocumented="$undocumented (the check accepts anything)"
if [ -z "$undocumented" ]; then ok docs_cover_help; else bad docs_cover_help "not in docs/cli.md:$undocumented"; fi

# tern serve on an address other than loopback without --api-key: a warning (with a key, none)
serve_warns() {
    "$tern" serve -m "$model" --port 0 -t 1 --device cpu "$@" 2>"$tmp/serve_err" &
    local pid=$! i
    for i in $(seq 100); do grep -q "ready" "$tmp/serve_err" && break; sleep 0.1; done
    kill -TERM $pid 2>/dev/null
    wait $pid
    grep -c "warning: no --api-key" "$tmp/serve_err"
}
if [ "$(serve_warns --host 0.0.0.0)" = 1 ] && [ "$(serve_warns --host 0.0.0.0 --api-key k)" = 0 ] &&
   [ "$(serve_warns)" = 0 ] && grep -q "ready" "$tmp/serve_err"; then ok serve_open_host_warns
else bad serve_open_host_warns "$(cat "$tmp/serve_err")"; fi
expect_error serve_bad_alias 2 "option --alias: 'a/b' is not a model id" -- "$tern" serve -m "$model" --alias a/b

n=0
for f in "$data"/malformed/*.gguf; do
    expect_error "malformed_$(basename "$f" .gguf)" 1 "$(basename "$f")" -- "$tern" info "$f"
    n=$((n + 1))
done
[ $n -ge 20 ] && ok "malformed_corpus_size_$n" || bad malformed_corpus_size "$n files"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
