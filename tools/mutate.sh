#!/usr/bin/env bash
# Mutation check: does the test suite notice a one-character bug? Applies single-site mutants to the
# library sources one at a time (flipped comparisons, && <-> ||, integer constants plus one, error
# returns turned into success), rebuilds incrementally in its own build folder, runs ctest, and
# reports per folder how many of the mutants that built the suite killed, listing the survivors.
# Not part of the default test run; see docs/architecture.md#testing.
#
# Usage: tools/mutate.sh [-n N] [-s SEED] [-t SECONDS] [-E REGEX] [-b DIR] [-r SITES] [FILE...]
#   -n N        test a random sample of N mutants (default: all of them)
#   -s SEED     seed of the sample (default 1)
#   -t SECONDS  ctest time limit per mutant (default 300); a timeout counts as killed
#   -E REGEX    ctest -E: skip these suites
#   -b DIR      build folder (default build-mutate)
#   -r SITES    test the mutants listed in SITES (a run's DIR/survivors.sites) instead: the check
#               after writing tests for the survivors
#   FILE...     sources to mutate (default host/*/*.c cpu/*.c cl/*.c scheduler/*.c, without the
#               SIMD twins cpu/isa_*.c)
# Prints one line per mutant and a summary; writes the survivors to DIR/survivors.txt, and their
# sites to DIR/survivors.sites for -r.
set -u
cd "$(dirname "$0")/.."
sample=0 seed=1 limit=300 exclude="" build=build-mutate rerun=""
while getopts "n:s:t:E:b:r:" opt; do
    case $opt in
    n) sample=$OPTARG ;;
    s) seed=$OPTARG ;;
    t) limit=$OPTARG ;;
    E) exclude=$OPTARG ;;
    b) build=$OPTARG ;;
    r) rerun=$OPTARG ;;
    *) sed -n '2,19p' "$0" >&2; exit 2 ;;
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

if [ -n "$rerun" ]; then
    mapfile -t sites <"$rerun"
    files=($(cut -f1 "$rerun" | sort -u))
else
    mapfile -t sites < <(list_sites "${files[@]}")
fi
if [ "$sample" -gt 0 ] && [ "$sample" -lt ${#sites[@]} ]; then
    mapfile -t sites < <(printf '%s\n' "${sites[@]}" | shuf -n "$sample" --random-source=<(yes "$seed"))
fi
echo "mutate: ${#sites[@]} mutants of ${#files[@]} files; build folder $build"

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null || exit 1
cmake --build "$build" -j2 >/dev/null || { echo "mutate: the unmutated tree does not build" >&2; exit 1; }
ctest_args=(--test-dir "$build" -j2 --timeout "$limit" --stop-on-failure)
[ -n "$exclude" ] && ctest_args+=(-E "$exclude")
ctest "${ctest_args[@]}" >/dev/null || { echo "mutate: the unmutated tree fails its tests" >&2; exit 1; }

backup=$(mktemp)
current=""
restore() { [ -n "$current" ] && cp -p "$backup" "$current"; current=""; }
trap 'restore; rm -f "$backup"; exit 130' INT TERM
declare -A built killed
: >"$build/survivors.txt.new"
: >"$build/survivors.sites.new"
for site in "${sites[@]}"; do
    IFS=$'\t' read -r file line col len to <<<"$site"
    dir=${file%%/*}
    cp -p "$file" "$backup"
    current=$file
    from=$(sed -n "${line}p" "$file" | cut -c$((col + 1))-$((col + len)))
    perl -i -pe "if (\$. == $line) { substr(\$_, $col, $len) = q{$to} }" "$file"
    if ! cmake --build "$build" -j2 >/dev/null 2>&1; then
        verdict="does not build"
    else
        built[$dir]=$((${built[$dir]:-0} + 1))
        if timeout $((limit + 60)) ctest "${ctest_args[@]}" >/dev/null 2>&1; then
            verdict="SURVIVED"
            echo "$file:$line: '$from' -> '$to': $(sed -n "${line}p" "$file" | sed 's/^ *//')" >>"$build/survivors.txt.new"
            echo "$site" >>"$build/survivors.sites.new"
        else
            verdict="killed"
            killed[$dir]=$((${killed[$dir]:-0} + 1))
        fi
    fi
    restore
    touch "$file" # the restored file is older than the mutant's object: make it rebuild
    echo "$verdict  $file:$line:$((col + 1)) '$from' -> '$to'"
done
rm -f "$backup"
mv "$build/survivors.txt.new" "$build/survivors.txt"
mv "$build/survivors.sites.new" "$build/survivors.sites"
cmake --build "$build" -j2 >/dev/null 2>&1

echo "mutate: killed / built per folder"
total_b=0 total_k=0
for dir in host cpu cl scheduler; do
    b=${built[$dir]:-0} k=${killed[$dir]:-0}
    [ "$b" -eq 0 ] && continue
    total_b=$((total_b + b)) total_k=$((total_k + k))
    printf '  %-10s %4d / %-4d (%d%%)\n' "$dir/" "$k" "$b" $((100 * k / b))
done
[ "$total_b" -gt 0 ] && printf '  %-10s %4d / %-4d (%d%%)\n' "all" "$total_k" "$total_b" $((100 * total_k / total_b))
if [ -s "$build/survivors.txt" ]; then
    echo "mutate: survivors ($build/survivors.txt):"
    sed 's/^/  /' "$build/survivors.txt"
fi
