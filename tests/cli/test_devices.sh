#!/usr/bin/env bash
# End-to-end checks of device selection: auto without OpenCL (one notice, same output), the probe
# cache (a second start measures nothing; a corrupt file is ignored with a notice), --device and
# --split errors (exit 2, one line), TERN_DEVICE, failover through the CLI, tern devices, and
# tern bench over a list of device specs. Usage: test_devices.sh BIN_DIR DATA_DIR TMP_DIR
set -u
bin=$1 data=$2 tmp=$3
rm -rf "$tmp" && mkdir -p "$tmp/cache" "$tmp/no-vendors"
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; [ $# -gt 1 ] && echo "     $2"; }
tern=$bin/tern
model=$data/vectors/mini-b158-i2s.gguf
export TERN_CACHE_DIR=$tmp/cache
run() { "$tern" run -m "$model" -p "Once upon a time" -n 16 --temp 0 "$@"; }

run --device cpu >"$tmp/cpu.out" 2>"$tmp/cpu.err" || bad cpu_run "$(cat "$tmp/cpu.err")"
[ -s "$tmp/cpu.out" ] && ok cpu_run

# auto with an empty ICD vendor folder: the CPU, one notice, the same text
OCL_ICD_VENDORS=$tmp/no-vendors OPENCL_VENDOR_PATH=$tmp/no-vendors run >"$tmp/o" 2>"$tmp/e"
rc=$?
notices=$(grep -c "^tern: notice" "$tmp/e")
if [ $rc -eq 0 ] && [ "$notices" -eq 1 ] && grep -q "no OpenCL device" "$tmp/e" && ! grep -q "error" "$tmp/e" &&
   cmp -s "$tmp/o" "$tmp/cpu.out"; then ok auto_without_opencl
else bad auto_without_opencl "rc $rc, $notices notices: $(cat "$tmp/e")"; fi

# the probe cache: the first auto start measures both devices, the second nothing
run >"$tmp/o1" 2>"$tmp/e1"
run >"$tmp/o2" 2>"$tmp/e2"
m1=$(grep -c "notice: measuring" "$tmp/e1") m2=$(grep -c "notice: measuring" "$tmp/e2")
if [ "$m1" -eq 2 ] && [ "$m2" -eq 0 ] && cmp -s "$tmp/o1" "$tmp/cpu.out" && cmp -s "$tmp/o2" "$tmp/cpu.out"; then
    ok probe_cache_reused
else bad probe_cache_reused "measured $m1 then $m2 times: $(cat "$tmp/e1" "$tmp/e2")"; fi
for f in "$tmp"/cache/probe-*.txt; do printf 'tern-probe\ngarbage\n1 2\n' >"$f"; done
run >"$tmp/o3" 2>"$tmp/e3"
if grep -q "ignoring the corrupt probe cache" "$tmp/e3" && [ "$(grep -c "notice: measuring" "$tmp/e3")" -eq 2 ] &&
   cmp -s "$tmp/o3" "$tmp/cpu.out"; then ok probe_cache_corrupt_ignored
else bad probe_cache_corrupt_ignored "$(cat "$tmp/e3")"; fi
run --reprobe >"$tmp/o4" 2>"$tmp/e4"
if [ "$(grep -c "notice: measuring" "$tmp/e4")" -eq 2 ]; then ok reprobe; else bad reprobe "$(cat "$tmp/e4")"; fi

# --head-mode auto follows the probe: the CPU certifies when its cached certified-head time is the
# lower one (rows recomputed per token below the vocabulary's 1000), not when it is the higher one.
# The OpenCL device's cached head takes a second, so the plan keeps the head on the CPU (in the
# sanitizer build the CPU's own head measures slower than PoCL's).
set_field() { awk -v f="$2" -v t="$3" 'NR == 3 { $f = t } { print }' "$1" >"$tmp/p" && mv "$tmp/p" "$1"; }
for f in "$tmp"/cache/probe-*.txt; do grep -q "| CPU (" "$f" || set_field "$f" 3 1; done
cpu_probe=$(grep -l "| CPU (" "$tmp"/cache/probe-*.txt)
set_cert_time() { set_field "$cpu_probe" 6 "$1"; }
rows() { TERN_LOG=debug run 2>&1 >/dev/null | sed -n 's/.*certified head: .* tokens, \([0-9.]*\) rows.*/\1/p'; }
set_cert_time 0
r_fast=$(rows)
set_cert_time 1
r_slow=$(rows)
if awk -v f="$r_fast" -v s="$r_slow" 'BEGIN { exit !(f != "" && f + 0 < 1000 && s + 0 == 1000) }'; then
    ok head_mode_auto_follows_probe
else bad head_mode_auto_follows_probe "rows per token: $r_fast with a faster, $r_slow with a slower certified head"; fi

# usage errors: exit 2, one line, nothing on stdout
usage_error() {
    local name=$1 pattern=$2
    shift 2
    "$@" >"$tmp/uo" 2>"$tmp/ue"
    local rc=$?
    if [ $rc -eq 2 ] && [ "$(wc -l <"$tmp/ue")" -eq 1 ] && grep -q -- "$pattern" "$tmp/ue" && [ ! -s "$tmp/uo" ]; then
        ok "$name"
    else bad "$name" "rc $rc: $(cat "$tmp/ue")"; fi
}
usage_error bad_spec "unknown device 'gpu'" run --device cpu,gpu
usage_error bad_spec_separator "ends with a separator" run --device cpu,
usage_error split_not_adding_up "gives 3 layers" run --device cpu,cl:0 --split 1,2
usage_error split_wrong_count "not 2 non-negative" run --device cpu,cl:0 --split 2
usage_error split_malformed "not a list of layer counts" run --device cpu,cl:0 --split 1,x
usage_error device_twice "listed twice" run --device cl:0,cpu,cl:0

# TERN_DEVICE sets the default
TERN_DEVICE=cl:0 run >"$tmp/o" 2>"$tmp/e"
if grep -q "pthread" "$tmp/e" && cmp -s "$tmp/o" "$tmp/cpu.out"; then ok tern_device_env
else bad tern_device_env "$(cat "$tmp/e")"; fi

# a split and a failover through the CLI: same text, one warning
run --device cl:0,cpu --split 1,1 >"$tmp/o" 2>"$tmp/e"
if grep -q "cl:0\[0-0\] cpu\[1-1\]" "$tmp/e" && cmp -s "$tmp/o" "$tmp/cpu.out"; then ok split_run
else bad split_run "$(cat "$tmp/e")"; fi
TERN_FAULT=cl:0:0:4 run --device cl:0,cpu --split 1,1 >"$tmp/o" 2>"$tmp/e"
rc=$?
if [ $rc -eq 0 ] && [ "$(grep -c "^tern: warning" "$tmp/e")" -eq 1 ] && ! grep -q "error" "$tmp/e" &&
   cmp -s "$tmp/o" "$tmp/cpu.out"; then ok failover_run
else bad failover_run "rc $rc: $(cat "$tmp/e")"; fi
TERN_FAULT=cl:0:1:2 run --device cl:0 >"$tmp/o" 2>"$tmp/e"
rc=$?
if [ $rc -eq 1 ] && [ "$(grep -c "^tern: error" "$tmp/e")" -eq 1 ] && [ "$(wc -l <"$tmp/e")" -eq 1 ]; then
    ok failover_nothing_left
else bad failover_nothing_left "rc $rc: $(cat "$tmp/e")"; fi

# tern devices
"$tern" devices >"$tmp/o" 2>"$tmp/e"
if [ $? -eq 0 ] && grep -q "^| cpu " "$tmp/o" && grep -q "^| cl:0 " "$tmp/o"; then ok devices_table
else bad devices_table "$(cat "$tmp/o" "$tmp/e")"; fi
"$tern" devices --probe -m "$model" --json >"$tmp/o" 2>"$tmp/e"
if [ $? -eq 0 ] && [ "$(grep -c '"decode_layer_ms"' "$tmp/o")" -eq 2 ] && grep -q '"id": "cl:0"' "$tmp/o"; then
    ok devices_probe_json
else bad devices_probe_json "$(cat "$tmp/o" "$tmp/e")"; fi
usage_error devices_probe_needs_model "needs exactly one of" "$tern" devices --probe

# tern bench over a list of specs: two rows (pp, tg) per spec, each with its plan
"$tern" bench -m "$model" --device cpu,cl:0,cl:0+cpu,auto --split 1+1 -p 8 -n 4 -r 2 >"$tmp/o" 2>"$tmp/e"
if [ $? -eq 0 ] && [ "$(grep -cE " (pp8|tg4) [|]" "$tmp/o")" -eq 8 ] && grep -q "cl:0\[0-0\] cpu\[1-1\]" "$tmp/o"; then
    ok bench_device_list
else bad bench_device_list "$(cat "$tmp/o" "$tmp/e")"; fi
# --parallel over a split spec runs on the split it is given, as the other tests do
"$tern" bench -m "$model" --device cl:0+cpu --split 1+1 --parallel 1,2 -n 4 -r 1 >"$tmp/o" 2>"$tmp/e"
if [ $? -eq 0 ] && [ "$(grep -cE "cl:0\[0-0\] cpu\[1-1\] .* tg4 x[12] [|]" "$tmp/o")" -eq 2 ]; then
    ok bench_parallel_split
else bad bench_parallel_split "$(cat "$tmp/o" "$tmp/e")"; fi
"$tern" bench -m "$model" --device cpu --json -p 8 -n 0 -r 1 >"$tmp/o" 2>"$tmp/e"
if grep -q '"plan": "cpu\[0-1\]"' "$tmp/o"; then ok bench_json_plan; else bad bench_json_plan "$(cat "$tmp/o")"; fi

# perplexity on the OpenCL device: the CPU's figure up to the float parts' last bits (design: the
# head's and attention's sums run in another order there)
seq 1 600 | tr '\n' ' ' >"$tmp/ppl.txt"
for d in cpu cl:0; do
    "$tern" perplexity -m "$model" -f "$tmp/ppl.txt" -c 128 --chunks 3 --device $d 2>"$tmp/e" | tail -1 >"$tmp/ppl.$d" ||
        bad "perplexity_$d" "$(cat "$tmp/e")"
done
if awk -v a="$(cut -d' ' -f5 "$tmp/ppl.cpu")" -v b="$(cut -d' ' -f5 "$tmp/ppl.cl:0")" \
    'BEGIN { d = (a - b) / a; exit !(a > 0 && d < 5e-3 && d > -5e-3) }'; then ok perplexity_cl_matches_cpu
else bad perplexity_cl_matches_cpu "$(cat "$tmp/ppl.cpu" "$tmp/ppl.cl:0")"; fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
