// tern serve against the official OpenAI client library. Usage:
//   node openai_test.mjs TERN MODEL NPM_PREFIX WORK_DIR
// Starts servers on free ports (--port 0, the port read from the "listening" line), checks the API
// with the `openai` package and raw HTTP, and stops each server with SIGTERM (exit status 0).
import { spawn, execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import vm from 'node:vm';

const [tern, model, npmPrefix] = process.argv.slice(2);
const require = createRequire(path.join(path.resolve(npmPrefix), 'node_modules', 'noop.js'));
const OpenAI = require('openai').default ?? require('openai');
const modelId = path.basename(model);

let passed = 0, failed = 0;
function check(ok, name, detail = '') {
  if (ok) { passed++; console.log(`ok   ${name}`); }
  else { failed++; console.log(`FAIL ${name}${detail ? `\n     ${detail}` : ''}`); }
}

// A server: resolves once it listens and the model is loaded; .stop() sends SIGTERM.
function startServer(args, env = {}) {
  return new Promise((resolve, reject) => {
    const device = args.includes('--device') ? [] : ['--device', 'cpu'];
    const child = spawn(tern, ['serve', '-m', model, '--port', '0', ...device, ...args],
                        { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
    let log = '', port = 0, done = false;
    child.stderr.on('data', (d) => {
      log += d.toString();
      const m = log.match(/listening on http:\/\/[^:]+:(\d+)/);
      if (m) port = Number(m[1]);
      if (!done && port && /ready:/.test(log)) {
        done = true;
        resolve({
          port, child, log: () => log,
          stop: () => new Promise((res) => { child.on('exit', (code, sig) => res({ code, sig })); child.kill('SIGTERM'); }),
        });
      }
    });
    child.on('exit', (code) => { if (!done) reject(new Error(`tern serve exited ${code}: ${log}`)); });
  });
}

function client(srv, apiKey = 'none') {
  return new OpenAI({ baseURL: `http://127.0.0.1:${srv.port}/v1`, apiKey, maxRetries: 0, timeout: 120000 });
}

// Raw HTTP: the status and body of one request written as given (possibly malformed).
function raw(srv, text, { closeOnData } = {}) {
  return new Promise((resolve) => {
    const sock = net.connect(srv.port, '127.0.0.1');
    let data = '';
    sock.on('data', (d) => {
      data += d.toString();
      if (closeOnData && data.includes('data: ')) sock.destroy(); /* leave mid-stream */
    });
    sock.on('error', () => resolve({ status: 0, body: data }));
    sock.on('close', () => {
      const m = data.match(/^HTTP\/1\.[01] (\d+)/);
      const body = data.split('\r\n\r\n').slice(1).join('\r\n\r\n');
      resolve({ status: m ? Number(m[1]) : 0, body });
    });
    sock.write(text);
  });
}

// The status and the Access-Control-Allow-Origin header of a request carrying an Origin header.
function corsCheck(srv, method, pathname, origin) {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port: srv.port, path: pathname, method,
                               headers: { Origin: origin, 'Access-Control-Request-Method': 'POST' } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode, allow: res.headers['access-control-allow-origin'] ?? null }));
    });
    req.on('error', () => resolve({ status: 0, allow: null }));
    req.end();
  });
}

// The chat page (GET /) with its script run against the server in a stand-in DOM: the elements
// the script reads by id, created elements with classes and text, listeners it registers.
async function chatPage(srv) {
  const base = `http://127.0.0.1:${srv.port}`;
  const res = await fetch(`${base}/`);
  const html = await res.text();
  class El {
    constructor() { this.children = []; this.listeners = {}; this.value = ''; this.textContent = ''; this.className = ''; }
    appendChild(c) { c.parent = this; this.children.push(c); return c; }
    addEventListener(type, f) { (this.listeners[type] ??= []).push(f); }
    querySelectorAll(sel) {
      const classes = sel.split(',').map((c) => c.trim().replace(/^\./, ''));
      return this.children.filter((c) => classes.some((k) => c.className.split(' ').includes(k)));
    }
    remove() { this.parent.children = this.parent.children.filter((c) => c !== this); }
  }
  const els = {};
  for (const id of ['model', 'temp', 'max', 'key', 'new', 'log', 'system', 'input', 'send']) els[id] = new El();
  els.temp.value = '0.8';
  els.max.value = '512';
  const store = {};
  const ctx = { document: { getElementById: (id) => els[id], createElement: () => new El() },
                localStorage: { getItem: (k) => store[k] ?? null, setItem: (k, v) => { store[k] = v; } },
                location: { origin: base }, fetch, URL, TextDecoder, AbortController, console };
  ctx.window = ctx;
  const script = html.match(/<script>([\s\S]*)<\/script>/)[1];
  vm.runInNewContext(script, ctx);
  await ctx.window.ternChat.showModel();
  const texts = (cls) => els.log.children.filter((c) => c.className.split(' ').includes(cls)).map((c) => c.textContent);
  return { res, html, els, chat: ctx.window.ternChat, texts };
}

function post(pathname, body, headers = {}) {
  const b = typeof body === 'string' ? body : JSON.stringify(body);
  const h = Object.entries({ 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(b), ...headers })
    .map(([k, v]) => `${k}: ${v}\r\n`).join('');
  return `POST ${pathname} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${h}\r\n${b}`;
}

// `tern run`'s greedy text for a prompt (its ids equal bitnet.cpp's on this file: test_conformance).
function ternRun(prompt, n) {
  return execFileSync(tern, ['run', '-m', model, '-p', prompt, '-n', String(n), '--temp', '0', '--device', 'cpu'],
                      { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
}

const prompts = ['The capital of France is', 'Once upon a time', '1, 2, 3, 4,', 'Hello there, my friend',
                 'In the beginning', 'A B C D', 'The quick brown fox', 'Tell me about the weather'];

async function main() {
  // ---------------------------------------------------------------- the client library
  let srv = await startServer(['--parallel', '4', '-c', '512']);
  const ai = client(srv);
  const models = await ai.models.list();
  check(models.data.length === 1 && models.data[0].id === modelId, 'models_list', JSON.stringify(models.data));
  const one = await ai.models.retrieve(modelId);
  let missing = null;
  try { await ai.models.retrieve('gpt-4'); } catch (e) { missing = e.status; }
  check(one.id === modelId && one.object === 'model' && missing === 404, 'models_retrieve', JSON.stringify([one, missing]));
  const health = await fetch(`http://127.0.0.1:${srv.port}/health`).then((r) => r.json());
  check(health.status === 'ok', 'health', JSON.stringify(health));
  // the chat page: served without a key, held to this server by its Content-Security-Policy; its
  // script streams each reply of a two-turn conversation, equal to the API's reply to the same
  // messages, and New chat starts over
  const page = await chatPage(srv);
  page.els.temp.value = '0';
  page.els.max.value = '12';
  page.els.input.value = 'Hi there';
  await page.chat.submit();
  page.els.input.value = 'And then?';
  await page.chat.submit();
  const pageTurn1 = await ai.chat.completions.create({ model: modelId, messages: [{ role: 'user', content: 'Hi there' }],
                                                   max_tokens: 12, temperature: 0 });
  const reply1 = pageTurn1.choices[0].message.content;
  const pageTurn2 = await ai.chat.completions.create({ model: modelId, max_tokens: 12, temperature: 0, messages: [
    { role: 'user', content: 'Hi there' }, { role: 'assistant', content: reply1 }, { role: 'user', content: 'And then?' }] });
  const shown = page.texts('assistant');
  check(page.res.status === 200 && /text\/html/.test(page.res.headers.get('content-type')) &&
        /connect-src 'self'/.test(page.res.headers.get('content-security-policy')) &&
        page.els.model.textContent === modelId && JSON.stringify(page.texts('user')) === '["Hi there","And then?"]' &&
        shown.length === 2 && shown[0] === reply1 && shown[1] === pageTurn2.choices[0].message.content &&
        page.texts('note').length === 2 && page.texts('error').length === 0,
        'chat_page', JSON.stringify([page.els.model.textContent, page.texts('user'), shown, page.texts('note'),
                                     page.texts("error"), reply1, pageTurn2.choices[0].message.content]));
  page.els.new.listeners.click[0]();
  check(page.texts('msg').length === 0 && page.chat.history().length === 0, 'chat_page_new_chat');
  // browsers: pages served from this machine may call the API (preflight and request); others get
  // no CORS header, so the browser keeps their page from reading the reply
  const corsLocal = await corsCheck(srv, 'OPTIONS', '/v1/chat/completions', 'http://localhost:3000');
  const corsGet = await corsCheck(srv, 'GET', '/v1/models', 'http://127.0.0.1:5173');
  const corsOther = await corsCheck(srv, 'OPTIONS', '/v1/chat/completions', 'http://localhost.example.com');
  check(corsLocal.status === 204 && corsLocal.allow === 'http://localhost:3000' && corsGet.status === 200 &&
        corsGet.allow === 'http://127.0.0.1:5173' && corsOther.status === 204 && corsOther.allow === null,
        'cors_local_pages', JSON.stringify([corsLocal, corsGet, corsOther]));

  const want = ternRun(prompts[0], 16);
  const c = await ai.completions.create({ model: modelId, prompt: prompts[0], max_tokens: 16, temperature: 0 });
  check(c.choices[0].text === want, 'completion_equals_tern_run', `${JSON.stringify(c.choices[0].text)} vs ${JSON.stringify(want)}`);
  check(c.choices[0].finish_reason === 'length' && c.usage.completion_tokens === 16 &&
        c.usage.prompt_tokens === 11 && c.usage.total_tokens === 27, 'completion_usage', JSON.stringify(c.usage));

  const msgs = [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Hi there' }];
  const whole = await ai.chat.completions.create({ model: modelId, messages: msgs, max_tokens: 12, temperature: 0 });
  const stream = await ai.chat.completions.create({ model: modelId, messages: msgs, max_tokens: 12, temperature: 0,
                                                    stream: true, stream_options: { include_usage: true } });
  let streamed = '', chunks = 0, finish = null, usage = null;
  for await (const ch of stream) {
    chunks++;
    if (ch.choices.length) {
      streamed += ch.choices[0].delta.content ?? '';
      finish = ch.choices[0].finish_reason ?? finish;
    }
    if (ch.usage) usage = ch.usage;
  }
  check(whole.choices[0].message.role === 'assistant' && whole.choices[0].message.content.length > 0,
        'chat_completion', JSON.stringify(whole.choices[0]));
  check(streamed === whole.choices[0].message.content && chunks >= 3 && finish === whole.choices[0].finish_reason,
        'chat_stream_equals_whole', `${JSON.stringify(streamed)} (${chunks} chunks) vs ${JSON.stringify(whole.choices[0].message.content)}`);
  check(usage && usage.prompt_tokens === whole.usage.prompt_tokens && usage.completion_tokens === whole.usage.completion_tokens,
        'chat_stream_usage', JSON.stringify(usage));

  // a stop string taken from the middle of the greedy text cuts the reply just before it
  const long = ternRun(prompts[1], 16);
  const cut = Math.floor(long.length / 2), stopText = long.slice(cut, cut + 3);
  const stopped = await ai.completions.create({ model: modelId, prompt: prompts[1], max_tokens: 16, temperature: 0, stop: [stopText] });
  check(stopped.choices[0].text === long.slice(0, long.indexOf(stopText)) && stopped.choices[0].finish_reason === 'stop',
        'stop_string', `${JSON.stringify(stopped.choices[0].text)} stop ${JSON.stringify(stopText)} in ${JSON.stringify(long)}`);
  const sstream = await ai.completions.create({ model: modelId, prompt: prompts[1], max_tokens: 16, temperature: 0,
                                                stop: stopText, stream: true });
  let stext = '';
  for await (const ch of sstream) stext += ch.choices[0]?.text ?? '';
  check(stext === stopped.choices[0].text, 'stop_string_streamed', JSON.stringify(stext));
  // of several stop strings the one that begins first wins; one of 200 KB that never occurs, and one
  // whose first character the text keeps beginning, change nothing, streamed or not
  const absent = ['\u2603', '~', '#', '@', '%'].find((c) => !long.includes(c));
  const early = long.slice(Math.floor(long.length / 4), Math.floor(long.length / 4) + 2);
  const stops = [stopText, absent.repeat(200000), early, long[0] + absent];
  const wantStop = long.slice(0, Math.min(long.indexOf(early), long.indexOf(stopText)));
  const several = await ai.completions.create({ model: modelId, prompt: prompts[1], max_tokens: 16, temperature: 0, stop: stops });
  check(several.choices[0].text === wantStop && several.choices[0].finish_reason === 'stop', 'stop_strings_earliest',
        `${JSON.stringify(several.choices[0].text)} want ${JSON.stringify(wantStop)}`);
  const sstream2 = await ai.completions.create({ model: modelId, prompt: prompts[1], max_tokens: 16, temperature: 0,
                                                 stop: stops, stream: true });
  let stext2 = '';
  for await (const ch of sstream2) stext2 += ch.choices[0]?.text ?? '';
  check(stext2 === wantStop, 'stop_strings_streamed', JSON.stringify(stext2));
  // sixteen, as evaluation harnesses send (OpenAI takes four): the last two still cut the text
  const sixteen = [...Array(14).keys()].map((i) => `${absent}${i}`).concat([stopText, early]);
  const sixteenCut = await ai.completions.create({ model: modelId, prompt: prompts[1], max_tokens: 16, temperature: 0,
                                                   stop: sixteen });
  check(sixteenCut.choices[0].text === wantStop, 'stop_strings_sixteen', JSON.stringify(sixteenCut.choices[0].text));

  // llama-server's sampling fields: top_k 1 keeps only the most likely token, whatever the temperature
  const k1 = await ai.completions.create({ model: modelId, prompt: prompts[0], max_tokens: 16, temperature: 1.5, top_k: 1, seed: 7 });
  check(k1.choices[0].text === want, 'top_k_1_is_greedy', JSON.stringify(k1.choices[0].text));

  // ---------------------------------------------------------------- logprobs
  // Chat: each token's log-probability and the most likely tokens at its position, from every row of
  // the head (the server's CPU head is certified, which greedy requests without logprobs use). The
  // tokens' bytes make up the reply; the greedy token is the most likely one.
  const lpChat = await ai.chat.completions.create({ model: modelId, messages: msgs, max_tokens: 12, temperature: 0,
                                                    logprobs: true, top_logprobs: 3 });
  const content = lpChat.choices[0].logprobs?.content ?? [];
  const bytesOf = (items) => Buffer.from(items.flatMap((t) => t.bytes)).toString();
  check(lpChat.choices[0].message.content === whole.choices[0].message.content && content.length > 0 &&
        bytesOf(content) === lpChat.choices[0].message.content &&
        content.every((t) => t.top_logprobs.length === 3 && t.top_logprobs[0].logprob === t.logprob &&
                             t.top_logprobs[0].token === t.token && t.logprob <= 0 &&
                             t.top_logprobs.every((a, i) => i === 0 || a.logprob <= t.top_logprobs[i - 1].logprob) &&
                             t.top_logprobs.reduce((sum, a) => sum + Math.exp(a.logprob), 0) <= 1 + 1e-6),
        'chat_logprobs', JSON.stringify(lpChat.choices[0].logprobs).slice(0, 400));
  const lpStream = await ai.chat.completions.create({ model: modelId, messages: msgs, max_tokens: 12, temperature: 0,
                                                      logprobs: true, top_logprobs: 3, stream: true });
  const streamedLp = [];
  for await (const ch of lpStream) streamedLp.push(...(ch.choices[0]?.logprobs?.content ?? []));
  check(JSON.stringify(streamedLp) === JSON.stringify(content), 'chat_logprobs_streamed',
        `${streamedLp.length} tokens streamed against ${content.length}`);
  // Completions with echo score the prompt: prompt token t's log-probability and its position's top 5
  // are those of the token the same prompt cut before t gets as its first generated token (the same
  // bits: a position's logits do not depend on its batch). Token ids as lm-evaluation-harness sends.
  const ids = JSON.parse(execFileSync(tern, ['tokenize', '-m', model, '--ids', '--no-bos', '-p', 'The capital of France is'],
                                      { stdio: ['ignore', 'pipe', 'ignore'] }).toString());
  const echoed = await ai.completions.create({ model: modelId, prompt: ids, max_tokens: 1, temperature: 0, logprobs: 5,
                                              echo: true });
  const elp = echoed.choices[0].logprobs;
  const top5 = (o) => Object.values(o).sort((a, b) => b - a).slice(0, 5);
  let echoOk = elp.tokens.length === ids.length + 1 && elp.token_logprobs[0] === null && elp.top_logprobs[0] === null &&
    echoed.usage.prompt_tokens === ids.length && echoed.usage.completion_tokens === 1 &&
    elp.tokens.slice(0, ids.length).join('') === echoed.choices[0].text.slice(0, elp.text_offset[ids.length]);
  for (let t = 1; t <= ids.length && echoOk; t++) {
    const g = await ai.completions.create({ model: modelId, prompt: ids.slice(0, t), max_tokens: 1, temperature: 0,
                                           logprobs: 5 });
    const glp = g.choices[0].logprobs;
    echoOk = JSON.stringify(top5(glp.top_logprobs[0])) === JSON.stringify(top5(elp.top_logprobs[t])) &&
      (t < ids.length || (glp.tokens[0] === elp.tokens[t] && glp.token_logprobs[0] === elp.token_logprobs[t]));
    if (!echoOk) console.log(`     position ${t}: ${JSON.stringify(glp)} against ${JSON.stringify(elp.top_logprobs[t])}`);
  }
  check(echoOk, 'echo_logprobs_equal_generation', JSON.stringify(elp).slice(0, 300));
  // scoring a prompt that begins like one scored before (a multiple-choice question's answers after
  // one context) evaluates only from the shared prefix's last token, and scores as evaluating all
  // of it does (here: as the same prompt scored with 5 top tokens, whose records the slot lacks)
  await ai.completions.create({ model: modelId, prompt: [...ids, ids[0], ids[1]], max_tokens: 1, temperature: 0,
                                logprobs: 1, echo: true });
  const reused = await ai.completions.create({ model: modelId, prompt: [...ids, ids[2]], max_tokens: 1,
                                               temperature: 0, logprobs: 1, echo: true });
  const whole5 = await ai.completions.create({ model: modelId, prompt: [...ids, ids[2]], max_tokens: 1,
                                               temperature: 0, logprobs: 5, echo: true });
  const rl = reused.choices[0].logprobs, wl = whole5.choices[0].logprobs;
  check(reused.usage.prompt_tokens_details.cached_tokens === ids.length - 1 &&
        whole5.usage.prompt_tokens_details.cached_tokens === 0 &&
        JSON.stringify(rl.token_logprobs) === JSON.stringify(wl.token_logprobs) &&
        rl.top_logprobs.every((t, i) => t === null ? wl.top_logprobs[i] === null
          : Math.max(...Object.values(t)) === Math.max(...Object.values(wl.top_logprobs[i]))),
        'echo_reuses_scored_prefix', JSON.stringify([reused.usage, whole5.usage]));
  // several prompts, one choice each, equal to each prompt sent alone; max_tokens 0 with echo scores
  // the prompt alone
  const batch = await ai.completions.create({ model: modelId, prompt: prompts.slice(0, 3), max_tokens: 8, temperature: 0 });
  const single = await Promise.all(prompts.slice(0, 3).map((p) =>
    ai.completions.create({ model: modelId, prompt: p, max_tokens: 8, temperature: 0 })));
  check(batch.choices.length === 3 && batch.choices.every((ch, i) => ch.index === i && ch.text === single[i].choices[0].text) &&
        batch.usage.completion_tokens === single.reduce((n, a) => n + a.usage.completion_tokens, 0),
        'several_prompts', JSON.stringify(batch.choices.map((ch) => ch.text)));
  // n choices of a prompt: choice j is the request with seed + j, and the prompt counts once
  const three = await ai.chat.completions.create({ model: modelId, messages: msgs, max_tokens: 8, temperature: 1.0,
                                                   top_k: 0, seed: 5, n: 3 });
  const seeded = await Promise.all([5, 6, 7].map((seed) => ai.chat.completions.create({
    model: modelId, messages: msgs, max_tokens: 8, temperature: 1.0, top_k: 0, seed })));
  check(three.choices.length === 3 &&
        three.choices.every((ch, j) => ch.index === j && ch.message.content === seeded[j].choices[0].message.content) &&
        three.usage.prompt_tokens === seeded[0].usage.prompt_tokens &&
        three.usage.completion_tokens === seeded.reduce((n, a) => n + a.usage.completion_tokens, 0) &&
        new Set(three.choices.map((ch) => ch.message.content)).size > 1,
        'n_choices', JSON.stringify(three.choices.map((ch) => ch.message.content)));
  // several choices streamed: chunks of the choices interleave, each naming its choice; every
  // choice's text, finish reason and token counts equal the whole reply's (cached tokens depend on
  // what the slots hold)
  const collect = async (stream, field) => {
    const got = { text: [], finish: [], order: [], usage: null, roles: 0 };
    for await (const ch of stream) {
      if (ch.usage) got.usage = ch.usage;
      for (const c of ch.choices) {
        got.text[c.index] = (got.text[c.index] ?? '') + (field(c) ?? '');
        if (c.delta?.role === 'assistant') got.roles++;
        if (c.finish_reason) got.finish[c.index] = c.finish_reason;
        got.order.push(c.index);
      }
    }
    return got;
  };
  const sbatch = await collect(await ai.completions.create({ model: modelId, prompt: prompts.slice(0, 3), max_tokens: 8,
    temperature: 0, stream: true, stream_options: { include_usage: true } }), (c) => c.text);
  check(sbatch.text.length === 3 && sbatch.text.every((t, i) => t === batch.choices[i].text) &&
        sbatch.finish.every((f, i) => f === batch.choices[i].finish_reason) &&
        sbatch.order.some((k, i) => i > 0 && k < sbatch.order[i - 1]) &&
        sbatch.usage.prompt_tokens === batch.usage.prompt_tokens &&
        sbatch.usage.completion_tokens === batch.usage.completion_tokens,
        'several_prompts_streamed', JSON.stringify(sbatch));
  const sthree = await collect(await ai.chat.completions.create({ model: modelId, messages: msgs, max_tokens: 8,
    temperature: 1.0, top_k: 0, seed: 5, n: 3, stream: true, stream_options: { include_usage: true } }),
  (c) => c.delta?.content);
  check(sthree.text.length === 3 && sthree.text.every((t, j) => t === three.choices[j].message.content) &&
        sthree.roles === 3 && sthree.finish.every((f, j) => f === three.choices[j].finish_reason) &&
        sthree.usage.prompt_tokens === three.usage.prompt_tokens &&
        sthree.usage.completion_tokens === three.usage.completion_tokens,
        'n_choices_streamed', JSON.stringify(sthree));
  const scored = await ai.completions.create({ model: modelId, prompt: prompts[0], max_tokens: 0, logprobs: 1, echo: true });
  const slp = scored.choices[0].logprobs;
  check(scored.choices[0].text === prompts[0] && scored.usage.completion_tokens === 0 &&
        slp.tokens.length === scored.usage.prompt_tokens && slp.token_logprobs.slice(1).every((v) => v < 0) &&
        slp.text_offset[0] === 0 && slp.text_offset[1] === 0 && slp.tokens.slice(1).join('') === prompts[0],
        'echo_scores_prompt', JSON.stringify(slp).slice(0, 300));

  // ---------------------------------------------------------------- the tokenizer endpoints
  // vLLM's forms, which lm-evaluation-harness's remote tokenizer calls (and llama-server's): the ids
  // of `tern tokenize`, and the text back from them
  const base = `http://127.0.0.1:${srv.port}`;
  const postJson = (p, body) => fetch(base + p, { method: 'POST', body: JSON.stringify(body) })
    .then(async (r) => ({ status: r.status, body: await r.json() }));
  const info = await fetch(`${base}/tokenizer_info`).then((r) => r.json());
  const withBos = JSON.parse(execFileSync(tern, ['tokenize', '-m', model, '--ids', '-p', prompts[3]],
                                          { stdio: ['ignore', 'pipe', 'ignore'] }).toString());
  const tk = await postJson('/tokenize', { prompt: prompts[3], add_special_tokens: false });
  const tkBos = await postJson('/tokenize', { content: prompts[3], add_special: true });
  const dt = await postJson('/detokenize', { tokens: tk.body.tokens });
  const dtBos = await postJson('/detokenize', { tokens: withBos });
  check(typeof info.eos_token === 'string' && info.eos_token.length > 0 && 'bos_token' in info &&
        JSON.stringify(tkBos.body.tokens) === JSON.stringify(withBos) &&
        JSON.stringify(tk.body.tokens) === JSON.stringify(withBos.slice(1)) && tk.body.count === withBos.length - 1 &&
        dt.body.prompt === prompts[3] && dtBos.body.content === info.bos_token + prompts[3],
        'tokenizer_endpoints', JSON.stringify([info, tk.body, tkBos.body, dt.body, dtBos.body]));

  // logit_bias: +100 makes greedy decoding take that token every time (and, being a bias of the
  // sampler, reads every row of the head)
  const forced = tk.body.tokens[1];
  const biased = await ai.completions.create({ model: modelId, prompt: prompts[0], max_tokens: 3, temperature: 0,
                                               logit_bias: { [forced]: 100 } });
  const forcedText = (await postJson('/detokenize', { tokens: [forced, forced, forced] })).body.prompt;
  check(biased.choices[0].text === forcedText, 'logit_bias_forces',
        `${JSON.stringify(biased.choices[0].text)} want ${JSON.stringify(forcedText)}`);

  // ---------------------------------------------------------------- the prompt cache
  // A prompt that begins with what a slot evaluated (its last prompt and reply) evaluates only the
  // rest, with the same output as evaluating all of it.
  const p1 = prompts[0] + want + ' and';
  const c1 = await ai.completions.create({ model: modelId, prompt: p1, max_tokens: 12, temperature: 0 });
  const cached1 = c1.usage.prompt_tokens_details?.cached_tokens;
  check(cached1 >= c.usage.prompt_tokens - 1 && cached1 < c1.usage.prompt_tokens && c1.choices[0].text === ternRun(p1, 12),
        'prompt_cache_completion', `${cached1} of ${c1.usage.prompt_tokens} prompt tokens cached; ${JSON.stringify(c1.choices[0].text)}`);
  const turn2 = [...msgs, { role: 'assistant', content: whole.choices[0].message.content }, { role: 'user', content: 'And again?' }];
  const chat2 = await ai.chat.completions.create({ model: modelId, messages: turn2, max_tokens: 12, temperature: 0 });
  const cached2 = chat2.usage.prompt_tokens_details?.cached_tokens;
  check(cached2 >= whole.usage.prompt_tokens - 1 && cached2 < chat2.usage.prompt_tokens, 'prompt_cache_chat_turn',
        `${cached2} of ${chat2.usage.prompt_tokens} prompt tokens cached (turn 1: ${whole.usage.prompt_tokens})`);
  check(/\(\d+ cached\)/.test(srv.log()), 'prompt_cache_logged', srv.log());

  // JSON mode: response_format json_object holds each choice to one JSON object. With '"' and '}'
  // favoured, sampled choices close their objects, each parses, and its stream equals it; without,
  // each still begins with '{' (this random model's own first token does not); a schema is refused
  // by name
  const idOf = async (t) => (await postJson('/tokenize', { prompt: t })).body.tokens[0];
  const favour = { [await idOf('"')]: 20, [await idOf('}')]: 25 };
  const jsonMsgs = [{ role: 'user', content: 'Answer in JSON.' }];
  const jsonMode = await ai.chat.completions.create({ model: modelId, messages: jsonMsgs, max_tokens: 64,
    temperature: 1.0, seed: 3, n: 4, logit_bias: favour, response_format: { type: 'json_object' } });
  const plainFirst = await ai.chat.completions.create({ model: modelId, messages: jsonMsgs, max_tokens: 1, temperature: 0 });
  const jsonFree = await ai.chat.completions.create({ model: modelId, messages: jsonMsgs, max_tokens: 24,
    temperature: 0, response_format: { type: 'json_object' } });
  const jsonStream = await collect(await ai.chat.completions.create({ model: modelId, messages: jsonMsgs, max_tokens: 64,
    temperature: 1.0, seed: 3, logit_bias: favour, response_format: { type: 'json_object' }, stream: true }),
  (c) => c.delta?.content);
  const parsesObject = (t) => { try { const v = JSON.parse(t); return v !== null && typeof v === 'object' && !Array.isArray(v); } catch { return false; } };
  // a JSON schema (OpenAI's structured outputs): every choice that ends is an object with the
  // schema's keys, in its order, of its types
  const citySchema = { type: 'object', additionalProperties: false, required: ['city', 'pop', 'big'],
                       properties: { city: { type: 'string' }, pop: { type: 'integer' }, big: { type: 'boolean' } } };
  const structured = await ai.chat.completions.create({ model: modelId, messages: jsonMsgs, max_tokens: 96,
    temperature: 1.0, seed: 4, n: 4, logit_bias: { [await idOf('"')]: 20 },
    response_format: { type: 'json_schema', json_schema: { name: 'city', schema: citySchema, strict: true } } });
  const followsCity = (t) => {
    try {
      const v = JSON.parse(t);
      return JSON.stringify(Object.keys(v)) === '["city","pop","big"]' && typeof v.city === 'string' &&
             Number.isInteger(v.pop) && typeof v.big === 'boolean';
    } catch { return false; }
  };
  check(structured.choices.every((ch) => ch.finish_reason === 'stop' && followsCity(ch.message.content)),
        'json_schema', JSON.stringify(structured.choices.map((ch) => ch.message.content)));
  // as pydantic writes a model: $defs, $ref, and anyOf with null for an optional value
  const petSchema = {
    $defs: { Pet: { type: 'object', properties: { name: { type: 'string' }, age: { anyOf: [{ type: 'integer' }, { type: 'null' }] } },
                    required: ['name', 'age'], title: 'Pet' } },
    type: 'object', title: 'Owner', required: ['owner', 'pets'],
    properties: { owner: { type: 'string' }, pets: { type: 'array', items: { $ref: '#/$defs/Pet' }, maxItems: 2 } } };
  const pets = await ai.chat.completions.create({ model: modelId, messages: jsonMsgs, max_tokens: 160,
    temperature: 1.0, seed: 6, n: 3, logit_bias: { [await idOf('"')]: 20 },
    response_format: { type: 'json_schema', json_schema: { name: 'owner', schema: petSchema } } });
  const followsPets = (t) => {
    try {
      const v = JSON.parse(t);
      return JSON.stringify(Object.keys(v)) === '["owner","pets"]' && v.pets.length <= 2 &&
             v.pets.every((p) => JSON.stringify(Object.keys(p)) === '["name","age"]' && typeof p.name === 'string' &&
                                 (p.age === null || Number.isInteger(p.age)));
    } catch { return false; }
  };
  check(pets.choices.every((ch) => ch.finish_reason !== 'stop' || followsPets(ch.message.content)) &&
        pets.choices.some((ch) => ch.finish_reason === 'stop'),
        'json_schema_refs', JSON.stringify(pets.choices.map((ch) => [ch.finish_reason, ch.message.content])));
  // constraints as pydantic writes them, in two schemas (the test server's context is short):
  // Field(ge=1, le=5), confloat(gt=0, lt=1), Literal[1, 2, 3], Literal[True]; constr(min_length=2,
  // max_length=8), constr(pattern=...), a date
  const noSpace = { [await idOf('"')]: 20 }; // the random model pads JSON with whitespace: less of it
  for (const ws of [' ', '  ', '   ', '    ', '\t', '\t\t', '\n', '\n\n', '\r', '\r\n', ' \n', '\n '])
    noSpace[await idOf(ws)] = -30;
  const constrained = [
    [{ type: 'object', required: ['stars', 'score', 'level', 'ok'],
       properties: { stars: { type: 'integer', minimum: 1, maximum: 5 }, score: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1 },
                     level: { enum: [1, 2, 3] }, ok: { const: true } } },
     (v) => JSON.stringify(Object.keys(v)) === '["stars","score","level","ok"]' && Number.isInteger(v.stars) &&
            v.stars >= 1 && v.stars <= 5 && typeof v.score === 'number' && v.score > 0 && v.score < 1 &&
            [1, 2, 3].includes(v.level) && v.ok === true],
    [{ type: 'object', required: ['name', 'code', 'day'],
       properties: { name: { type: 'string', minLength: 2, maxLength: 8 }, code: { type: 'string', pattern: '^[A-Z]{2}-\\d{3}$' },
                     day: { type: 'string', format: 'date' } } },
     (v) => JSON.stringify(Object.keys(v)) === '["name","code","day"]' && typeof v.name === 'string' &&
            [...v.name].length >= 2 && [...v.name].length <= 8 && /^[A-Z]{2}-\d{3}$/.test(v.code) &&
            /^\d{4}-\d{2}-\d{2}$/.test(v.day) && !Number.isNaN(Date.parse(v.day))]];
  for (const [k, [schema, follows]] of constrained.entries()) {
    const r = await ai.chat.completions.create({ model: modelId, messages: jsonMsgs, max_tokens: 100,
      temperature: 1.0, seed: 8, n: 4, logit_bias: noSpace,
      response_format: { type: 'json_schema', json_schema: { name: 'review', schema } } });
    const ok = (t) => { try { return follows(JSON.parse(t)); } catch { return false; } };
    check(r.choices.every((ch) => ch.finish_reason !== 'stop' || ok(ch.message.content)) &&
          r.choices.some((ch) => ch.finish_reason === 'stop'),
          `json_schema_bounds_${k}`, JSON.stringify(r.choices.map((ch) => [ch.finish_reason, ch.message.content])));
  }
  {
    // (a server of its own: the tools' system message needs a longer context than 128 tokens a slot)
    const toolSrv = await startServer(['--parallel', '2', '-c', '2048']);
    const ai = client(toolSrv);
    // function calling: tool_choice "required" makes every choice that ends a call of the tool, its
    // arguments following the tool's parameters; the stream carries the same calls; a conversation
    // with a call and its result goes back in; "auto" lets the model answer in text
    const weather = { type: 'function', function: { name: 'get_weather', description: 'The weather in a city now',
      parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 12 }, unit: { enum: ['c', 'f'] } },
                    required: ['city', 'unit'] } } };
    const toolAsk = { model: modelId, messages: [{ role: 'user', content: 'Weather in Paris?' }], max_tokens: 100,
      temperature: 0.7, seed: 5, logit_bias: noSpace, tools: [weather], parallel_tool_calls: false };
    const called = await ai.chat.completions.create({ ...toolAsk, n: 3, tool_choice: 'required' });
    const callOk = (c) => {
      try {
        const a = JSON.parse(c.function.arguments);
        return c.type === 'function' && c.function.name === 'get_weather' && /^call_/.test(c.id) &&
               JSON.stringify(Object.keys(a)) === '["city","unit"]' && [...a.city].length <= 12 && ['c', 'f'].includes(a.unit);
      } catch { return false; }
    };
    check(called.choices.every((ch) => ch.finish_reason === 'length' ||
                               (ch.finish_reason === 'tool_calls' && ch.message.content === null &&
                                ch.message.tool_calls.length === 1 && callOk(ch.message.tool_calls[0]))) &&
          called.choices.some((ch) => ch.finish_reason === 'tool_calls'),
          'tools_required', JSON.stringify(called.choices.map((ch) => [ch.finish_reason, ch.message])));
    const named = await ai.chat.completions.create({ ...toolAsk, tool_choice: { type: 'function', function: { name: 'get_weather' } } });
    const streamed = { calls: [], finish: null };
    for await (const ch of await ai.chat.completions.create({ ...toolAsk, stream: true,
      tool_choice: { type: 'function', function: { name: 'get_weather' } } })) {
      for (const c of ch.choices) {
        for (const t of c.delta?.tool_calls ?? []) streamed.calls[t.index] = { id: t.id, type: t.type, function: t.function };
        if (c.finish_reason) streamed.finish = c.finish_reason;
      }
    }
    check(named.choices[0].finish_reason === 'tool_calls' && streamed.finish === 'tool_calls' &&
          JSON.stringify(streamed.calls.map((c) => c.function)) ===
          JSON.stringify(named.choices[0].message.tool_calls.map((c) => c.function)),
          'tools_stream_equals_whole', JSON.stringify([named.choices[0].message, streamed]));
    const call = named.choices[0].message.tool_calls?.[0];
    const back = await ai.chat.completions.create({ ...toolAsk, tool_choice: 'auto', messages: [
      { role: 'user', content: 'Weather in Paris?' }, { role: 'assistant', content: null, tool_calls: [call] },
      { role: 'tool', tool_call_id: call?.id, content: '{"temp": 21}' }] });
    const answer = back.choices[0];
    check(answer.finish_reason === 'length' || (answer.finish_reason === 'tool_calls' && callOk(answer.message.tool_calls[0])) ||
          (answer.finish_reason === 'stop' && typeof answer.message.content === 'string' && !answer.message.tool_calls),
          'tools_round_trip', JSON.stringify(answer));
    await toolSrv.stop();
  }
  check(jsonMode.choices.every((ch) => ch.finish_reason === 'stop' && parsesObject(ch.message.content)) &&
        jsonStream.text[0] === jsonMode.choices[0].message.content &&
        /^\{/.test(jsonFree.choices[0].message.content) && !/^\{/.test(plainFirst.choices[0].message.content),
        'json_mode', JSON.stringify([jsonMode.choices.map((ch) => ch.message.content), jsonFree.choices[0].message.content,
                                     plainFirst.choices[0].message.content]));

  // ---------------------------------------------------------------- concurrency
  const alone = prompts.map((p) => ternRun(p, 12));
  for (const parallel of ['4', '8']) {
    if (parallel === '8') { await srv.stop(); srv = await startServer(['--parallel', '8', '-c', '1024', '--no-prompt-cache', '--temp', '0']); }
    const ai2 = client(srv);
    const t0 = Date.now();
    const got = await Promise.all(prompts.map((p) =>
      ai2.completions.create({ model: modelId, prompt: p, max_tokens: 12, temperature: 0 })));
    const same = got.every((r, i) => r.choices[0].text === alone[i]);
    check(same, `eight_clients_parallel_${parallel}`,
          got.map((r, i) => `${JSON.stringify(r.choices[0].text)} vs ${JSON.stringify(alone[i])}`).join('; '));
    console.log(`     8 requests with --parallel ${parallel}: ${Date.now() - t0} ms`);
  }
  // the server's sampling flags are the defaults of a request (--temp 0 above: greedy)
  const dflt = await client(srv).completions.create({ model: modelId, prompt: prompts[1], max_tokens: 12 });
  check(dflt.choices[0].text === alone[1], 'sampling_flags_are_defaults', JSON.stringify(dflt.choices[0].text));
  // the chat's second turn evaluated whole gives the reply it gave from the cache
  const chat2whole = await client(srv).chat.completions.create({ model: modelId, messages: turn2, max_tokens: 12, temperature: 0 });
  check(chat2whole.choices[0].message.content === chat2.choices[0].message.content &&
        chat2whole.usage.prompt_tokens_details?.cached_tokens === 0, 'prompt_cache_same_output',
        `${JSON.stringify(chat2whole.choices[0].message.content)} vs ${JSON.stringify(chat2.choices[0].message.content)} from the cache`);
  const r1 = await srv.stop();
  check(r1.code === 0, 'sigterm_exits_0', JSON.stringify(r1));

  // ---------------------------------------------------------------- bad requests
  /* the scalar kernels (~2400 tokens/s on this model, against ~25000) keep a 200-token stream going
   * well past the moment its client leaves, so the server sees it leave */
  srv = await startServer(['--parallel', '2', '--api-key', 'sekret', '--max-body', '65536', '-c', '512',
                           '--cors', 'https://other.example,https://app.example'],
                          { TERN_CPU_ISA: 'scalar' });
  const auth = { Authorization: 'Bearer sekret' };
  // the page asks for the key: without it the reply is the server's error, with it the model answers
  const keyed = await chatPage(srv);
  await keyed.chat.send('Hello');
  const refused = keyed.texts('error');
  keyed.els.key.value = 'sekret';
  await keyed.chat.showModel();
  await keyed.chat.send('Hello');
  check(keyed.res.status === 200 && refused.length === 1 && /API key/.test(refused[0]) &&
        keyed.els.model.textContent === modelId && keyed.texts('assistant').length === 1,
        'chat_page_api_key', JSON.stringify([refused, keyed.els.model.textContent, keyed.texts('assistant')]));
  // a preflight needs no key (browsers never send one with it); --cors lists the origins allowed
  const pre = await corsCheck(srv, 'OPTIONS', '/v1/completions', 'https://app.example');
  const preOther = await corsCheck(srv, 'OPTIONS', '/v1/completions', 'http://localhost:3000');
  check(pre.status === 204 && pre.allow === 'https://app.example' && preOther.allow === null, 'cors_listed_origins',
        JSON.stringify([pre, preOther]));
  const bad = [
    [post('/v1/completions', '{"prompt": "x"', auth), 400, 'truncated JSON', null, 'not valid JSON'],
    [post('/v1/completions', '{"prompt": "x", "seed": 18446744073709551616}', auth), 400, 'a seed past 64 bits', null,
      'too big integer'],
    [post('/v1/completions', 'not json at all', auth), 400, 'invalid JSON'],
    [post('/v1/completions', '[1, 2]', auth), 400, 'a JSON array'],
    [post('/v1/completions', '', auth), 400, 'an empty body'],
    [post('/v1/completions', { prompt: 5 }, auth), 400, 'prompt of the wrong type', 'prompt'],
    [post('/v1/completions', { prompt: 'x', max_tokens: 'ten' }, auth), 400, 'max_tokens a string'],
    [post('/v1/completions', { prompt: 'x', max_tokens: -3 }, auth), 400, 'max_tokens negative'],
    [post('/v1/completions', { prompt: 'x', temperature: 7 }, auth), 400, 'temperature out of range'],
    [post('/v1/completions', { prompt: 'x', top_k: 'many' }, auth), 400, 'top_k a string'],
    [post('/v1/completions', { prompt: 'x', top_k: 2.5 }, auth), 400, 'top_k not an integer'],
    [post('/v1/completions', { prompt: 'x', min_p: 1.5 }, auth), 400, 'min_p out of range'],
    [post('/v1/completions', { prompt: 'x', repeat_last_n: -1 }, auth), 400, 'repeat_last_n negative'],
    [post('/v1/completions', { prompt: 'x', frequency_penalty: 2.5 }, auth), 400, 'frequency_penalty out of range'],
    [post('/v1/completions', { prompt: 'x', presence_penalty: 'a lot' }, auth), 400, 'presence_penalty a string'],
    [post('/v1/completions', { prompt: 'x', stop: 12 }, auth), 400, 'stop a number'],
    [post('/v1/completions', { prompt: 'x', stop: 'abcdefghijklmnopq'.split('') }, auth), 400, '17 stop strings', 'stop'],
    [post('/v1/completions', { prompt: 'x', stream: 'yes' }, auth), 400, 'stream a string'],
    [post('/v1/completions', { prompt: 'x', n: 0 }, auth), 400, 'n of 0', 'n'],
    [post('/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }],
      response_format: { type: 'json_schema', json_schema: { name: 'a', schema: { type: 'object', properties:
        { a: { type: 'string', pattern: '(?=x)' } } } } } }, auth), 400, 'a JSON schema with a lookahead', 'response_format'],
    [post('/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }],
      response_format: { type: 'json_schema', json_schema: { name: 'a' } } }, auth), 400, 'a json_schema without its schema',
      'response_format'],
    [post('/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], response_format: 'json' }, auth), 400,
      'response_format a string', 'response_format'],
    [post('/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], tools: {} }, auth), 400, 'tools an object', 'tools'],
    [post('/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'function', function: {} }] }, auth),
      400, 'a tool without a name', 'tools'],
    [post('/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'function', function: { name: 'a b' } }] },
      auth), 400, 'a tool name with a space', 'tools'],
    [post('/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'function', function: { name: 'f' } }],
      tool_choice: { type: 'function', function: { name: 'g' } } }, auth), 400, 'tool_choice of an unlisted tool', 'tool_choice'],
    [post('/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], tool_choice: 'required' }, auth), 400,
      'tool_choice required without tools', 'tool_choice'],
    [post('/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'function', function: { name: 'f',
      parameters: { type: 'object', properties: { n: { type: 'integer', multipleOf: 2 } } } } }] }, auth), 400,
      'tool parameters outside the subset', 'tools'],
    [post('/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'function', function: { name: 'f' } }],
      response_format: { type: 'json_object' } }, auth), 400, 'response_format beside tools', 'response_format'],
    [post('/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }, { role: 'tool', content: 'r' }] }, auth), 400,
      'a tool message without tool_call_id', 'messages'],
    [post('/v1/completions', { prompt: ['x', 'y'], n: 33 }, auth), 400, '66 choices', 'n'],
    [post('/v1/chat/completions', { messages: 'hi' }, auth), 400, 'messages a string'],
    [post('/v1/chat/completions', { messages: [] }, auth), 400, 'no messages'],
    [post('/v1/chat/completions', { messages: [{ role: 'wizard', content: 'x' }] }, auth), 400, 'unknown role'],
    [post('/v1/chat/completions', { messages: [{ role: 'user' }] }, auth), 400, 'no content', 'messages'],
    [post('/v1/completions', { prompt: 'word '.repeat(300) }, auth), 400, 'prompt longer than the context', 'prompt'],
    [post('/v1/chat/completions', { messages: [{ role: 'user', content: 'word '.repeat(300) }] }, auth), 400,
      'messages longer than the context', 'messages'],
    [post('/v1/completions', { prompt: [1, -2] }, auth), 400, 'a token id out of range', 'prompt'],
    [post('/v1/completions', { prompt: [[1], []] }, auth), 400, 'an empty prompt in a list', 'prompt'],
    [post('/v1/completions', { prompt: Array(65).fill('x') }, auth), 400, '65 prompts', 'prompt'],
    [post('/v1/completions', { prompt: 'x', logprobs: 21 }, auth), 400, 'logprobs over 20', 'logprobs'],
    [post('/v1/completions', { prompt: 'x', echo: 'yes' }, auth), 400, 'echo a string', 'echo'],
    [post('/v1/completions', { prompt: 'x', max_tokens: 0 }, auth), 400, 'max_tokens 0 without echo', 'max_tokens'],
    [post('/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], top_logprobs: 2 }, auth), 400,
      'top_logprobs without logprobs', 'top_logprobs'],
    [post('/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], logprobs: 1 }, auth), 400,
      'chat logprobs a number', 'logprobs'],
    [post('/tokenize', { prompt: 7 }, auth), 400, 'tokenize a number', 'prompt'],
    [post('/tokenize', { prompt: 'x', add_special_tokens: 'yes' }, auth), 400, 'add_special_tokens a string',
      'add_special_tokens'],
    [post('/detokenize', { tokens: [1, 1e9] }, auth), 400, 'detokenize an id out of range', 'tokens'],
    [post('/detokenize', { tokens: 'abc' }, auth), 400, 'detokenize a string', 'tokens'],
    [post('/tokenize', { prompt: 'x' }), 401, 'tokenize without the API key'],
    [post('/v1/completions', { prompt: 'x', logit_bias: { abc: 1 } }, auth), 400, 'logit_bias key not an id', 'logit_bias'],
    [post('/v1/completions', { prompt: 'x', logit_bias: { 5: 150 } }, auth), 400, 'logit_bias past 100', 'logit_bias'],
    [post('/v1/completions', { prompt: 'x', logit_bias: [1] }, auth), 400, 'logit_bias a list', 'logit_bias'],
    [post('/v1/completions', { model: 'gpt-4', prompt: 'x' }, auth), 404, 'unknown model'],
    [post('/v1/completions', { prompt: 'x'.repeat(70000) }, auth), 413, 'body over the limit'],
    [post('/v1/completions', { prompt: 'x' }), 401, 'no API key'],
    [post('/v1/completions', { prompt: 'x' }, { Authorization: 'Bearer wrong' }), 401, 'wrong API key'],
    [post('/v1/nothing', { prompt: 'x' }, auth), 404, 'unknown path'],
    ['GET /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer sekret\r\n\r\n', 405, 'GET on a POST endpoint'],
    ['GET /tokenize HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer sekret\r\n\r\n', 405, 'GET on /tokenize'],
    [post('/tokenizer_info', {}, auth), 405, 'POST on /tokenizer_info'],
  ];
  let badOk = 0;
  for (const [req, status, what, param, says] of bad) {
    const r = await raw(srv, req);
    let err = null;
    try { err = JSON.parse(r.body).error; } catch { /* checked below */ }
    const ok = r.status === status && err && typeof err.message === 'string' && typeof err.type === 'string' &&
      (param === undefined || err.param === param) && (says === undefined || err.message.includes(says));
    check(ok, `bad_request: ${what}`, `status ${r.status}, body ${r.body.slice(0, 200)}`);
    badOk += ok;
  }
  // a client leaving mid-stream frees its slot: the server goes on serving
  for (let i = 0; i < 3; i++)
    await raw(srv, post('/v1/completions', { prompt: 'Once upon a time', max_tokens: 200, temperature: 0, stream: true }, auth), { closeOnData: true });
  const after = await client(srv, 'sekret').completions.create({ model: modelId, prompt: prompts[0], max_tokens: 8, temperature: 0 });
  check(after.choices[0].text === ternRun(prompts[0], 8), 'serves_after_bad_requests', JSON.stringify(after.choices[0].text));
  console.log(`     ${badOk} of ${bad.length} bad requests answered with their 4xx; 3 clients left mid-stream; the server still serves`);
  const r2 = await srv.stop();
  check(r2.code === 0, 'sigterm_after_bad_requests', JSON.stringify(r2));
  check((srv.log().match(/client gone/g) || []).length === 3, 'disconnects_logged', srv.log());
  const lines = (srv.log().match(/^tern: (POST|GET) /gm) || []).length;
  /* 4 beside the bad ones, and the chat page's 6: the page, /v1/models three times, two chats */
  check(lines === bad.length + 10, 'one_log_line_per_request', `${lines} lines for ${bad.length + 10} requests:\n${srv.log()}`);

  // ---------------------------------------------------------------- the OpenCL device
  // Batched decode steps on cl:0 (PoCL in CI), whose head takes a step's tokens in one pass, full
  // and certified: eight clients each get the text the CPU gives the request alone.
  for (const mode of ['full', 'certified']) {
    let cl;
    try {
      cl = await startServer(['--device', 'cl:0', '--head-mode', mode, '--parallel', '4', '-c', '512', '--temp', '0']);
    } catch (e) {
      if (process.env.TERN_CL_OPTIONAL === '1') { console.log(`     no OpenCL device (TERN_CL_OPTIONAL=1): ${e.message.split('\n')[0]}`); break; }
      throw e;
    }
    const got = await Promise.all(prompts.map((p) =>
      client(cl).completions.create({ model: modelId, prompt: p, max_tokens: 12, temperature: 0 })));
    check(got.every((r, i) => r.choices[0].text === alone[i]), `eight_clients_cl_${mode}`,
          got.map((r, i) => `${JSON.stringify(r.choices[0].text)} vs ${JSON.stringify(alone[i])}`).join('; '));
    await cl.stop();
  }

  // ---------------------------------------------------------------- a full queue answers 503
  // (with --alias, the model's id in the API is that name)
  srv = await startServer(['--parallel', '1', '--queue', '1', '--alias', 'tern-test']);
  const ai3 = client(srv);
  const aliased = await ai3.models.list();
  check(aliased.data.length === 1 && aliased.data[0].id === 'tern-test', 'alias_model_id', JSON.stringify(aliased.data));
  /* eight at once, each generating 200 tokens: one runs, one waits, the others find the queue full */
  const results = await Promise.allSettled([0, 1, 2, 3, 4, 5, 6, 7].map(() =>
    ai3.completions.create({ model: 'tern-test', prompt: prompts[2], max_tokens: 200, temperature: 0 })));
  const busy = results.filter((r) => r.status === 'rejected' && r.reason?.status === 503).length;
  const served = results.filter((r) => r.status === 'fulfilled').length;
  check(busy >= 1 && served >= 2 && busy + served === 8, 'queue_full_503', `${served} served, ${busy} busy`);
  /* a request of more prompts than the slot and queue hold: its prompts wait for its own */
  const many = await ai3.completions.create({ model: 'tern-test', prompt: prompts, max_tokens: 4, temperature: 0 });
  check(many.choices.length === prompts.length && many.choices.every((ch, i) => ch.index === i) &&
        many.usage.completion_tokens === 4 * prompts.length, 'several_prompts_queued', JSON.stringify(many.usage));
  const smany = await collect(await ai3.completions.create({ model: 'tern-test', prompt: prompts, max_tokens: 4,
    temperature: 0, stream: true, stream_options: { include_usage: true } }), (c) => c.text);
  check(smany.text.length === prompts.length && smany.text.every((t, i) => t === many.choices[i].text) &&
        smany.usage.completion_tokens === 4 * prompts.length, 'several_prompts_queued_streamed', JSON.stringify(smany));
  await srv.stop();

  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => { console.log(`FAIL ${e.stack}`); console.log(`${passed} passed, ${failed + 1} failed`); process.exit(1); });
