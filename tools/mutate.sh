#!/usr/bin/env bash
# Mutation check: does the test suite notice a one-character bug? Applies single-site mutants to the
# library sources one at a time (flipped comparisons, && <-> ||, integer constants plus one, error
# returns turned into success), rebuilds only what the mutant touches, runs the suites that kill
# fastest first until one fails, and reports per folder how many of the mutants that built the suite
# killed, listing the survivors. Not part of the default test run; see docs/architecture.md#testing.
#
# Usage: tools/mutate.sh [-n N] [-s SEED] [-t SECONDS] [-j LANES] [-a] [-E REGEX] [-b DIR] [-r SITES] [FILE...]
#   -n N        test a sample of N mutants per folder (host, cpu, cl, scheduler) (default: all)
#   -s SEED     seed of the sample (default 1)
#   -t SECONDS  slack of the per-suite time limit, 5 x the suite's unmutated time + SECONDS
#               (default 60); a suite that runs out of time kills the mutant (counted apart too)
#   -j LANES    suites run at the same time (default 2)
#   -a          run all suites for every mutant, not only those that execute its line
#   -E REGEX    skip the suites whose names match
#   -b DIR      build folder (default build-mutate)
#   -r SITES    test the mutants listed in SITES (a run's DIR/survivors.sites) instead: the check
#               after writing tests for the survivors
#   FILE...     sources to mutate (default host/*/*.c cpu/*.c cl/*.c scheduler/*.c, without the
#               SIMD twins cpu/isa_*.c)
# Mutants listed in tools/mutate-equivalent.tsv (no observable change, each with its reason) are
# skipped. Runs at nice 19. Prints one line per mutant and the report; writes the survivors to
# DIR/survivors.txt and their sites to DIR/survivors.sites for -r. DIR/kills.tsv counts which suite
# killed how many mutants of each folder: later runs try those suites first.
set -u
cd "$(dirname "$0")/.."
renice -n 19 -p $$ >/dev/null 2>&1
sample=0 seed=1 slack=60 lanes=2 exclude="" build=build-mutate rerun="" use_coverage=1
while getopts "n:s:t:j:E:b:r:a" opt; do
    case $opt in
    n) sample=$OPTARG ;;
    s) seed=$OPTARG ;;
    t) slack=$OPTARG ;;
    j) lanes=$OPTARG ;;
    E) exclude=$OPTARG ;;
    b) build=$OPTARG ;;
    r) rerun=$OPTARG ;;
    a) use_coverage=0 ;;
    *) sed -n '2,27p' "$0" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
if [ $# -gt 0 ]; then files=("$@"); else
    files=()
    for f in host/*/*.c cpu/*.c cl/*.c scheduler/*.c; do
        case $f in cpu/isa_*.c) ;; *) files+=("$f") ;; esac
    done
fi

# Every mutation site: FILE<TAB>LINE<TAB>COLUMN<TAB>LENGTH<TAB>REPLACEMENT. Comments, preprocessor
# lines, static_asserts and string literals are skipped.
list_sites() {
    perl -ne '
        BEGIN { $in_comment = 0 }
        my $l = $_; chomp $l;
        $l =~ s/\\./__/g;                                 # escapes, then string and char literals
        $l =~ s/("[^"]*"|'"'"'[^'"'"']*'"'"')/" " x length($1)/ge;
        if ($in_comment) { if ($l =~ s/^.*?\*\///) { $in_comment = 0 } else { next } }
        $l =~ s/(\/\*.*?\*\/)/" " x length($1)/ge;
        if ($l =~ s/\/\*.*$//) { $in_comment = 1 }
        $l =~ s/\/\/.*$//;
        next if $l =~ /^\s*#/ || $l =~ /static_assert/;
        my @ops = (["==", "!="], ["!=", "=="], ["<=", "<"], [">=", ">"], ["&&", "||"], ["\\|\\|", "&&"]);
        for my $op (@ops) {
            my ($re, $to) = @$op;
            while ($l =~ /$re/g) { print "$ARGV\t$.\t", $-[0], "\t", length($&), "\t$to\n" }
        }
        while ($l =~ /(?<![<>\-=])<(?![<=])/g) { print "$ARGV\t$.\t$-[0]\t1\t<=\n" }
        while ($l =~ /(?<![<>\-=])>(?![>=])/g) { print "$ARGV\t$.\t$-[0]\t1\t>=\n" }
        while ($l =~ /(?<![\w.])(\d+)(?![\w.])/g) { print "$ARGV\t$.\t$-[0]\t", length($1), "\t", $1 + 1, "\n" }
        while ($l =~ /return TERN_ERR_\w+;/g) { print "$ARGV\t$.\t$-[0]\t", length($&), "\treturn TERN_OK;\n" }
        close ARGV if eof;
    ' "$@"
}

# A site's key in tools/mutate-equivalent.tsv: FILE<TAB>the line without its indentation<TAB>the
# column in that text<TAB>REPLACEMENT, so that the list survives edits elsewhere in the file.
site_key() {
    local file=$1 line=$2 col=$3 to=$4 text trimmed
    text=$(sed -n "${line}p" "$file")
    trimmed=${text#"${text%%[! ]*}"}
    printf '%s\t%s\t%d\t%s' "$file" "$trimmed" $((col - ${#text} + ${#trimmed} + 1)) "$to"
}
declare -A equivalent
if [ -f tools/mutate-equivalent.tsv ]; then
    while IFS=$'\t' read -r f text c to _reason; do
        case $f in '' | '#'*) continue ;; esac
        equivalent["$f"$'\t'"$text"$'\t'"$c"$'\t'"$to"]=1
    done <tools/mutate-equivalent.tsv
fi

if [ -n "$rerun" ]; then
    mapfile -t sites <"$rerun"
    files=($(cut -f1 "$rerun" | sort -u))
else
    mapfile -t sites < <(list_sites "${files[@]}")
    if [ "$sample" -gt 0 ]; then # stratified: the same number from each folder, a fixed seed
        all=("${sites[@]}") sites=()
        # the folders take turns, so that a run stopped early still reports on each of them
        mapfile -t sites < <(for dir in host cpu cl scheduler; do
            printf '%s\n' "${all[@]}" | grep "^$dir/" | shuf -n "$sample" --random-source=<(yes "$seed") | nl -w1
        done | sort -s -n -k1,1 | cut -f2-)
    fi
fi
mapfile -t sites < <(printf '%s\n' "${sites[@]}" | grep .)
echo "mutate: ${#sites[@]} mutants of ${#files[@]} files; build folder $build"

# A shared libtern and no relinking of its users: a mutant costs one compile and one link.
generator=()
[ -f "$build/CMakeCache.txt" ] || ! command -v ninja >/dev/null || generator=(-G Ninja)
cmake -S . -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DTERN_SHARED_CORE=ON \
    -DCMAKE_LINK_DEPENDS_NO_SHARED=ON >/dev/null || exit 1
cmake --build "$build" -j2 >/dev/null || { echo "mutate: the unmutated tree does not build" >&2; exit 1; }
ctest_args=(--test-dir "$build" -j2)
[ -n "$exclude" ] && ctest_args+=(-E "$exclude")
ctest "${ctest_args[@]}" >/dev/null || ctest "${ctest_args[@]}" --rerun-failed >/dev/null ||
    { echo "mutate: the unmutated tree fails its tests" >&2; exit 1; }

# Coverage: which suites execute each line, from a --coverage build ($build/cov) running each suite
# alone; made again when a source or test changed (DIR/coverage.tsv.key). A mutant then runs only the suites
# that execute its line, and one on a line that no suite executes survives without a run. A line
# gcov does not list (a declaration, an initializer) runs every suite.
declare -A covered
coverage() {
    local cov=$build/cov map=$build/coverage.tsv suite key
    key=$(git ls-files -co --exclude-standard host cpu cl scheduler tests tools CMakeLists.txt |
        grep -v '^tools/mutate' | xargs cat | md5sum)
    if [ ! -s "$map" ] || [ "$(cat "$map.key" 2>/dev/null)" != "$key" ]; then
        echo "mutate: measuring which suites execute which lines ($cov)"
        cmake -S . -B "$cov" "${generator[@]}" -DCMAKE_BUILD_TYPE=None -DCMAKE_C_FLAGS="-O1 --coverage" \
            -DTERN_WERROR=OFF >/dev/null && cmake --build "$cov" -j2 >/dev/null || exit 1
        : >"$map.new"
        for suite in "${suites[@]}"; do
            find "$cov" -name '*.gcda' -delete
            ctest --test-dir "$cov" -R "^$suite\$" >/dev/null 2>&1
            find "$cov" -name '*.gcda' -path '*/tern*.dir/*' -print0 | xargs -0 -r gcov -t -j 2>/dev/null |
                jq -r --arg s "$suite" --arg root "$PWD/" '.files[] | .file as $f | .lines[] |
                    [($f | ltrimstr($root)), .line_number, (if .count > 0 then $s else "-" end)] | @tsv'
        done | sort -u | awk -F'\t' '{ k = $1 "\t" $2; if (!(k in s) || s[k] == "-") s[k] = $3;
            else if ($3 != "-") s[k] = s[k] "," $3 } END { for (k in s) print k "\t" s[k] }' >"$map.new"
        mv "$map.new" "$map"
        echo "$key" >"$map.key"
    fi
    while IFS=$'\t' read -r f l who; do covered[$f:$l]=$who; done <"$map"
}
# Suite order, per folder: most kills per second of the suite's unmutated time first (ctest's
# recorded times; kills.tsv from earlier runs), so a killed mutant usually costs one short suite.
declare -A seconds kills
while read -r name _runs secs; do
    [ "$name" = "---" ] && break
    seconds[$name]=$secs
done <"$build/Testing/Temporary/CTestCostData.txt"
mapfile -t suites < <(ctest --test-dir "$build" -N ${exclude:+-E "$exclude"} | sed -n 's/^ *Test *#[0-9]*: //p')
[ -f "$build/kills.tsv" ] && while read -r dir name n; do kills[$dir/$name]=$n; done <"$build/kills.tsv"
[ "$use_coverage" = 1 ] && coverage
suite_order() {
    local name list=("${suites[@]}")
    [ -n "${2:-}" ] && IFS=, read -r -a list <<<"$2"
    for name in "${list[@]}"; do
        awk -v k="${kills[$1/$name]:-0}" -v s="${seconds[$name]:-60}" -v n="$name" \
            -v t="$slack" 'BEGIN { printf "%.6f %s %d\n", (k + 1) / (s + 0.2), n, 5 * s + t + 1 }'
    done | sort -k1,1gr | cut -d' ' -f2-
}

# run_suites DIR [SUITES]: the suites (all, or the comma-separated list) in order, LANES at a time,
# until one fails twice (or runs out of time once); prints the failed suite ("name" or "name (timeout)"), nothing if all pass.
run_suites() {
    local failed
    failed=$(mktemp)
    suite_order "$1" "${2:-}" | xargs -P "$lanes" -n 2 sh -c '
        timeout -s KILL "$4" ctest --test-dir "$1" -R "^$3\$" >/dev/null 2>&1
        rc=$?
        [ $rc -eq 0 ] && exit 0
        if [ $rc -ne 137 ]; then # once more: a suite that fails only under load is no kill
            timeout -s KILL "$4" ctest --test-dir "$1" -R "^$3\$" >/dev/null 2>&1
            rc=$?
            [ $rc -eq 0 ] && exit 0
        fi
        if [ $rc -eq 137 ]; then echo "$3 (timeout)" >>"$2"; else echo "$3" >>"$2"; fi
        exit 255' _ "$build" "$failed" 2>/dev/null
    head -n 1 "$failed"
    rm -f "$failed"
}

backup=$(mktemp)
current=""
restore() { [ -n "$current" ] && cp -p "$backup" "$current"; current=""; }
trap 'restore; rm -f "$backup"; exit 130' INT TERM
declare -A built killed nobuild skipped timeouts
: >"$build/survivors.txt.new"
: >"$build/survivors.sites.new"
last=""
for site in "${sites[@]}"; do
    IFS=$'\t' read -r file line col len to <<<"$site"
    dir=${file%%/*}
    from=$(sed -n "${line}p" "$file" | cut -c$((col + 1))-$((col + len)))
    if [ -n "${equivalent["$(site_key "$file" "$line" "$col" "$to")"]:-}" ]; then
        skipped[$dir]=$((${skipped[$dir]:-0} + 1))
        echo "equivalent  $file:$line:$((col + 1)) '$from' -> '$to'"
        continue
    fi
    [ -n "$last" ] && [ "$last" != "$file" ] && touch "$last" # the restored file: rebuild it
    last=$file
    cp -p "$file" "$backup"
    current=$file
    perl -i -pe "if (\$. == $line) { substr(\$_, $col, $len) = q{$to} }" "$file"
    touch "$file"
    start=$SECONDS
    if ! cmake --build "$build" -j2 >/dev/null 2>&1; then
        verdict="does not build"
        nobuild[$dir]=$((${nobuild[$dir]:-0} + 1))
    else
        built[$dir]=$((${built[$dir]:-0} + 1))
        who=${covered[$file:$line]:-}
        by=""
        if [ "$who" != "-" ]; then by=$(run_suites "$dir" "$who"); fi
        if [ -z "$by" ]; then
            verdict="SURVIVED"
            [ "$who" = "-" ] && verdict="SURVIVED (no suite executes the line)"
            echo "$file:$line: '$from' -> '$to': $(sed -n "${line}p" "$file" | sed 's/^ *//')" >>"$build/survivors.txt.new"
            echo "$site" >>"$build/survivors.sites.new"
        else
            verdict="killed by $by"
            killed[$dir]=$((${killed[$dir]:-0} + 1))
            case $by in *"(timeout)") timeouts[$dir]=$((${timeouts[$dir]:-0} + 1)) ;; esac
            name=${by% (timeout)}
            kills[$dir/$name]=$((${kills[$dir/$name]:-0} + 1))
        fi
    fi
    restore
    echo "$verdict  $file:$line:$((col + 1)) '$from' -> '$to' ($((SECONDS - start)) s)"
done
rm -f "$backup"
[ -n "$last" ] && touch "$last"
mv "$build/survivors.txt.new" "$build/survivors.txt"
mv "$build/survivors.sites.new" "$build/survivors.sites"
for k in "${!kills[@]}"; do echo "${k%%/*} ${k#*/} ${kills[$k]}"; done | sort >"$build/kills.tsv"
cmake --build "$build" -j2 >/dev/null 2>&1

echo "mutate: killed / built per folder (seed $seed)"
printf '  %-10s %8s %8s %6s %9s %9s %11s\n' folder killed built share timeouts "no build" equivalent
total_b=0 total_k=0
for dir in host cpu cl scheduler; do
    b=${built[$dir]:-0} k=${killed[$dir]:-0}
    [ "$b" -eq 0 ] && [ -z "${skipped[$dir]:-}${nobuild[$dir]:-}" ] && continue
    total_b=$((total_b + b)) total_k=$((total_k + k))
    printf '  %-10s %8d %8d %5d%% %9d %9d %11d\n' "$dir/" "$k" "$b" $((b ? 100 * k / b : 0)) \
        "${timeouts[$dir]:-0}" "${nobuild[$dir]:-0}" "${skipped[$dir]:-0}"
done
[ "$total_b" -gt 0 ] && printf '  %-10s %8d %8d %5d%%\n' "all" "$total_k" "$total_b" $((100 * total_k / total_b))
if [ -s "$build/survivors.txt" ]; then
    echo "mutate: survivors ($build/survivors.txt):"
    sed 's/^/  /' "$build/survivors.txt"
fi
