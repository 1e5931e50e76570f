#!/usr/bin/env python3
"""tern bench beside upstream llama.cpp's llama-bench on the same GGUF file, in one sitting.

Speed figures on a shared or virtual machine move by 5-10% from one minute to the next, so a
comparison with another runtime only means something when both run on the same machine in the
same minutes. This tool fetches Debian's build of llama.cpp (package llama.cpp-tools and the
ggml CPU backends, from Debian unstable, which has them; Debian 12 does not), keeps it in tern's
cache folder, and then runs llama-bench and `tern bench` in alternating rounds on one model file,
printing every round's tokens/s and the ratio of the medians.

Debian unstable's binaries need a newer C and C++ runtime than Debian 12 has, so the tool also
unpacks that release's libc6, libstdc++6 and their neighbours into the same private folder and
starts llama-bench through that folder's dynamic loader; nothing is installed on the system. Every
download is checked: the suite's InRelease against the Debian archive keyring (gpgv), the package
index against InRelease's SHA256, each .deb against the index's SHA256.

The model must be one both runtimes load: llama.cpp's `bitnet` architecture with TQ2_0 or TQ1_0
linears, for example the 2B-4T shape that tern-make-model writes:

    build/tern-make-model --preset 2b4t --arch bitnet --type tq2_0 -o /dev/shm/2b4t-tq2.gguf
    tools/llama_anchor.py -m /dev/shm/2b4t-tq2.gguf -p 128,512 -n 128 -r 3 -t 2 --rounds 3

llama.cpp computes that architecture with per-block (Q8_K) activations and a SiLU FFN, a
different function from BitNet b1.58's per-token int8 activations, so the two runtimes' texts
differ; the work per token (the same ternary weights, the same F16 head) is the same. See
docs/cpu.md, "Whole model, and against llama.cpp".

Another llama-bench already built here (ik_llama.cpp, bitnet.cpp, a local llama.cpp) takes the
place of Debian's with --llama-bench PATH --name NAME; --llama-model gives it its own file of the
same weights (ik_llama.cpp's IQ2_BN, say, where tern runs the I2_S file) and --llama-args its own
flags ("-rtr 1").
"""

import argparse
import hashlib
import json
import lzma
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import urllib.request

PACKAGES = ["llama.cpp-tools", "libllama0", "libggml0", "libc6", "libstdc++6", "libgcc-s1",
            "libgomp1", "libssl3t64", "zlib1g", "libzstd1"]
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
LIBDIR = "usr/lib/x86_64-linux-gnu"
# ggml's x86 CPU backend variants, most capable first; the first one that loads on this CPU is used
# (a variant whose instructions the CPU lacks refuses to load).
VARIANTS = ["sapphirerapids", "zen4", "cooperlake", "icelake", "cascadelake", "cannonlake",
            "skylakex", "alderlake", "haswell", "ivybridge", "sandybridge", "piledriver", "sse42",
            "x64"]


def die(msg):
    sys.exit("llama_anchor: error: " + msg)


def log(msg):
    print("llama_anchor: " + msg, file=sys.stderr, flush=True)


def download(url):
    try:
        with urllib.request.urlopen(url, timeout=120) as r:
            return r.read()
    except OSError as e:
        die(f"cannot download {url}: {e}")


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def verified_release(mirror, suite, work):
    """The suite's InRelease text after gpgv has checked its signature."""
    path = os.path.join(work, "InRelease")
    with open(path, "wb") as f:
        f.write(download(f"{mirror}/dists/{suite}/InRelease"))
    r = subprocess.run(["gpgv", "--keyring", KEYRING, "--output", "-", path],
                       capture_output=True)
    if r.returncode != 0:
        die(f"the signature of {suite}'s InRelease does not verify against {KEYRING}: "
            + r.stderr.decode(errors="replace").strip().splitlines()[-1])
    return r.stdout.decode()


def release_sha256(release, name):
    in_sha = False
    for line in release.splitlines():
        if not line.startswith(" "):
            in_sha = line.startswith("SHA256:")
        elif in_sha:
            digest, _size, path = line.split()
            if path == name:
                return digest
    die(f"InRelease does not list {name}")


def stanzas(text):
    for block in text.split("\n\n"):
        fields = {}
        for line in block.splitlines():
            if line and not line[0].isspace() and ":" in line:
                key, value = line.split(":", 1)
                fields[key] = value.strip()
        if "Package" in fields:
            yield fields


def fetch(mirror, suite, cache):
    """Unpack the packages into cache/root; return the versions fetched."""
    os.makedirs(cache, exist_ok=True)
    release = verified_release(mirror, suite, cache)
    index_name = "main/binary-amd64/Packages.xz"
    index = download(f"{mirror}/dists/{suite}/{index_name}")
    if sha256(index) != release_sha256(release, index_name):
        die(f"{index_name} does not match the SHA256 that InRelease gives")
    found = {}
    for s in stanzas(lzma.decompress(index).decode()):
        if s["Package"] in PACKAGES and s.get("Architecture") in ("amd64", "all"):
            found[s["Package"]] = s
    missing = [p for p in PACKAGES if p not in found]
    if missing:
        die(f"{suite} has no package {', '.join(missing)}")
    root = os.path.join(cache, "root")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    versions = {}
    for name in PACKAGES:
        s = found[name]
        log(f"fetching {name} {s['Version']}")
        deb = download(f"{mirror}/{s['Filename']}")
        if sha256(deb) != s["SHA256"]:
            die(f"{s['Filename']} does not match the SHA256 of the package index")
        path = os.path.join(cache, os.path.basename(s["Filename"]))
        with open(path, "wb") as f:
            f.write(deb)
        subprocess.run(["dpkg-deb", "-x", path, root], check=True)
        os.remove(path)
        versions[name] = s["Version"]
    with open(os.path.join(cache, "versions.json"), "w") as f:
        json.dump({"suite": suite, "versions": versions}, f, indent=1)
    return versions


def llama_command(root, args):
    lib = os.path.join(root, LIBDIR)
    paths = ":".join([lib, os.path.join(lib, "llama"), os.path.join(root, "lib/x86_64-linux-gnu")])
    return [os.path.join(lib, "ld-linux-x86-64.so.2"), "--library-path", paths,
            os.path.join(root, "usr/bin/llama-bench")] + args


def pick_variant(root):
    for v in VARIANTS:
        path = os.path.join(root, LIBDIR, "ggml/backends0", f"libggml-cpu-{v}.so")
        if not os.path.exists(path):
            continue
        r = subprocess.run(llama_command(root, ["--list-devices"]),
                           env=dict(os.environ, GGML_BACKEND_PATH=path), capture_output=True)
        if r.returncode == 0 and b"loaded CPU backend" in r.stderr:
            return v, path
    die(f"no ggml CPU backend in {root} loads on this CPU (--refetch fetches the build again)")


def run_json(name, cmd, env=None):
    r = subprocess.run(cmd, env=env, capture_output=True)
    if r.returncode != 0:
        err = r.stderr.decode(errors="replace").strip().splitlines()
        die(f"{name} failed: " + (err[-1] if err else f"exit {r.returncode}"))
    return json.loads(r.stdout)


def llama_round(cmd, env, a):
    rows = run_json("llama-bench", cmd + ["-m", a.llama_model or a.model, "-p", a.prompt, "-n", a.gen, "-r",
                                         str(a.repetitions), "-t", str(a.threads), "-o", "json"]
                    + shlex.split(a.llama_args), env=env)
    out = {}
    for r in rows:
        test = f"pp{r['n_prompt']}" if r["n_prompt"] else f"tg{r['n_gen']}"
        out[(a.name, test)] = r["avg_ts"]
    return out


def tern_round(a, probes):
    rows = run_json("tern bench", [a.tern, "bench", "-m", a.model, "-p", a.prompt, "-n", a.gen, "-r",
                     str(a.repetitions), "-t", str(a.threads), "--device", "cpu", "--head-mode",
                     a.head_mode, "--json"])
    out = {}
    for r in rows:
        out[(f"tern {r['head_mode']}", r["test"])] = r["tokens_per_s"]
    if rows:
        probes.append((rows[0]["read_gb_per_s"], rows[0]["dot_gmac_per_s"], rows[0]["macs_per_token"]))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", help="GGUF file both runtimes load (bitnet arch, TQ2_0/TQ1_0)")
    ap.add_argument("-p", "--prompt", default="128,512", help="prompt sizes (default 128,512)")
    ap.add_argument("-n", "--gen", default="128", help="generation lengths (default 128)")
    ap.add_argument("-r", "--repetitions", type=int, default=3, help="repetitions a round (default 3)")
    ap.add_argument("-t", "--threads", type=int, default=2, help="threads for both (default 2)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    ap.add_argument("--head-mode", default="full,certified", help="tern's head modes (default full,certified)")
    ap.add_argument("--tern", default="build/tern", help="the tern binary (default build/tern)")
    ap.add_argument("--llama-bench", help="a llama-bench already built (llama.cpp, ik_llama.cpp, bitnet.cpp) "
                    "instead of Debian's")
    ap.add_argument("--name", default="llama.cpp", help="what to call that runtime in the table (default llama.cpp)")
    ap.add_argument("--llama-model", help="its model file, when it reads another format of the same weights "
                    "(default: -m)")
    ap.add_argument("--llama-args", default="", help="more llama-bench arguments, e.g. \"-rtr 1\"")
    ap.add_argument("--suite", default="sid", help="Debian suite to take llama.cpp from (default sid)")
    ap.add_argument("--mirror", default="http://deb.debian.org/debian", help="Debian mirror")
    ap.add_argument("--cache", help="where the build is kept (default: tern's cache folder, llama-anchor/)")
    ap.add_argument("--refetch", action="store_true", help="fetch again even if a build is cached")
    ap.add_argument("--fetch-only", action="store_true", help="fetch (or check the cached build) and stop")
    a = ap.parse_args()

    for m in (a.model, a.llama_model):
        if m and not os.path.isfile(m):
            die(f"{m}: no such file")
    if a.llama_bench:
        if a.fetch_only:
            die("--fetch-only fetches Debian's build; --llama-bench names one already here")
        if not os.access(a.llama_bench, os.X_OK):
            die(f"{a.llama_bench} is not an executable llama-bench (--llama-bench)")
        llama_cmd, llama_env = [a.llama_bench], None
        log(f"{a.name}: {a.llama_bench}")
    else:
        cache = a.cache
        if not cache:
            base = os.environ.get("TERN_CACHE_DIR") or os.path.join(
                os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tern")
            cache = os.path.join(base, "llama-anchor")
        root = os.path.join(cache, "root")
        stamp = os.path.join(cache, "versions.json")
        if a.refetch or not os.path.exists(stamp):
            versions = fetch(a.mirror.rstrip("/"), a.suite, cache)
        else:
            with open(stamp) as f:
                versions = json.load(f)["versions"]
        variant, backend = pick_variant(root)
        llama_cmd, llama_env = llama_command(root, []), dict(os.environ, GGML_BACKEND_PATH=backend)
        log(f"llama.cpp {versions['llama.cpp-tools']} (Debian), ggml {versions['libggml0']}, "
            f"CPU backend {variant}, in {cache}")
    if a.fetch_only:
        return
    if not a.model:
        die("-m MODEL is required (unless --fetch-only)")
    if not os.access(a.tern, os.X_OK):
        die(f"{a.tern} is not an executable tern binary (--tern)")

    samples, probes = {}, []
    for i in range(a.rounds):
        order = [lambda: llama_round(llama_cmd, llama_env, a), lambda: tern_round(a, probes)]
        if i % 2:
            order.reverse()
        for run in order:
            for key, ts in run().items():
                samples.setdefault(key, []).append(ts)
        log(f"round {i + 1} of {a.rounds} done")

    tests = sorted({t for _, t in samples}, key=lambda t: (t[:2] != "pp", int(t[2:])))
    runtimes = [a.name] + sorted({r for r, _ in samples if r != a.name})
    files = os.path.basename(a.model) + (f" ({a.name}: {os.path.basename(a.llama_model)})" if a.llama_model else "")
    print(f"{files}, {a.threads} threads, {a.rounds} alternating rounds of "
          f"-r {a.repetitions}; t/s a round (each the mean of its repetitions)\n")
    print("| test | " + " | ".join(runtimes) + " | " +
          " | ".join(f"{r} / {a.name}" for r in runtimes[1:]) + " |")
    print("|---" * (2 * len(runtimes)) + "|")
    for t in tests:
        base = samples.get((a.name, t))
        cells = [" / ".join(f"{x:.1f}" for x in samples.get((r, t), [])) or "-" for r in runtimes]
        ratios = []
        for r in runtimes[1:]:
            s = samples.get((r, t))
            ratios.append(f"{statistics.median(s) / statistics.median(base):.2f}" if s and base else "-")
        print(f"| {t} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    if probes:
        print(f"\ntern bench's probes, a round each: read {' / '.join(f'{p[0]:.1f}' for p in probes)} GB/s; "
              f"int8 dot {' / '.join(f'{p[1]:.0f}' for p in probes)} GMAC/s; "
              f"{probes[0][2] / 1e9:.3f} G ternary MACs a token")


if __name__ == "__main__":
    main()
