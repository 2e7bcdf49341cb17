// Driver side of the chat flows: spawns one chat_worker.cjs process per SDK
// user and talks to it over stdin/stdout.  A flow script does
//   const { runFlow } = require('./chat_lib.cjs');
//   runFlow(async (flow) => { const alice = await flow.user('alice'); ... return out; });
// and prints one JSON line: the flow's result, or {"error": ..., "partial": ...}.
'use strict';

const { spawn } = require('node:child_process');
const path = require('node:path');
const readline = require('node:readline');

const WAIT_MS = 8000;

class User {
  constructor(name, child) {
    this.name = name;
    this.child = child;
    this.nextId = 1;
    this.pending = new Map();
    this.events = [];
    this.waiters = [];
    this.stderr = '';
    child.stderr.on('data', (chunk) => {
      this.stderr = (this.stderr + chunk).slice(-4000);
    });
    readline.createInterface({ input: child.stdout }).on('line', (line) => this.onLine(line));
    child.on('exit', (code) => {
      for (const { reject } of this.pending.values()) reject(new Error(`${name} worker exited (${code}): ${this.stderr}`));
      this.pending.clear();
    });
  }

  onLine(line) {
    if (!line.startsWith('{')) return;
    const message = JSON.parse(line);
    if (message.reply !== undefined) {
      const waiting = this.pending.get(message.reply);
      this.pending.delete(message.reply);
      if (!waiting) return;
      if (message.ok) waiting.resolve(message.result);
      else waiting.reject(Object.assign(new Error(`${this.name} ${waiting.what}: ${JSON.stringify(message.error)}`), { remote: message.error }));
    } else if (message.event) {
      this.events.push(message);
      this.waiters = this.waiters.filter((w) => !w.offer(message));
    }
  }

  request(op, fields = {}, what = op) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, what });
      this.child.stdin.write(JSON.stringify({ id, op, ...fields }) + '\n');
    });
  }

  // Call ConnectyCube.<path>(...args) in the worker; resolves with its (awaited) result.
  call(pathName, ...args) {
    return this.request('call', { path: pathName, args }, pathName);
  }

  // Like call(), but resolves with {error} instead of rejecting.
  async attempt(pathName, ...args) {
    try {
      return { result: await this.call(pathName, ...args) };
    } catch (e) {
      return { error: e.remote !== undefined ? e.remote : String(e) };
    }
  }

  get(pathName) {
    return this.request('get', { path: pathName }, pathName);
  }

  // The first not yet consumed event `name` whose args satisfy `match`; rejects after `ms`.
  waitFor(name, match = () => true, ms = WAIT_MS) {
    const index = this.events.findIndex((e) => !e.used && e.event === name && match(...e.args));
    if (index >= 0) {
      this.events[index].used = true;
      return Promise.resolve(this.events[index].args);
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        offer: (event) => {
          if (event.used || event.event !== name || !match(...event.args)) return false;
          event.used = true;
          clearTimeout(timer);
          resolve(event.args);
          return true;
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`${this.name}: no ${name} within ${ms} ms; events: ${JSON.stringify(this.events.slice(-10))}`));
      }, ms);
      this.waiters.push(waiter);
    });
  }

  // The args of event `name` if one arrives within `ms`, else null.
  async maybe(name, match = () => true, ms = 1500) {
    try {
      return await this.waitFor(name, match, ms);
    } catch {
      return null;
    }
  }

  // Mark every event `name` seen so far as consumed (so waitFor only sees later ones).
  drain(name) {
    for (const e of this.events) if (e.event === name) e.used = true;
  }

  // Every event `name` seen so far (consumed or not).
  seen(name) {
    return this.events.filter((e) => e.event === name).map((e) => e.args);
  }
}

class Flow {
  constructor(settings) {
    this.settings = settings;
    this.users = [];
    this.suffix = `${process.pid}${Date.now() % 1e6}`;
  }

  // Start a worker, sign the user up over REST and log in (REST session); not yet connected to chat.
  // With {as: otherUser}: a second device of that user (same login, own process).
  // With {jwt}: a token user, init({appId, token: jwt}) (no signup).
  async user(name, options = {}) {
    const child = spawn(process.execPath, [path.join(__dirname, 'chat_worker.cjs')], {
      cwd: __dirname, stdio: ['pipe', 'pipe', 'pipe'],
    });
    const user = new User(name, child);
    this.users.push(user);
    const same = options.as;
    const login = same ? same.login : `${name}${this.suffix}`;
    const password = same ? same.password : `${name}-password-${this.suffix}`;
    const info = await user.request('setup', {
      apiUrl: this.settings.apiUrl, chatUrl: this.settings.chatUrl, appId: this.settings.appId,
      authKey: this.settings.authKey, login, password, streamManagement: options.streamManagement,
      existing: Boolean(same), userId: same && same.userId, token: options.jwt,
    });
    Object.assign(user, info, { login, password });
    return user;
  }

  // user() + chat.connect with the password (or the session token with {token: true}).
  async online(name, options = {}) {
    const user = await this.user(name, options);
    await user.call('chat.connect', { userId: user.userId, password: options.token ? user.token : user.password });
    return user;
  }

  async close() {
    await Promise.all(this.users.map(async (user) => {
      try {
        await Promise.race([user.call('chat.disconnect'), sleep(2500)]);
      } catch {
        // already gone
      }
      user.child.kill();
    }));
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function runFlow(body) {
  const settings = JSON.parse(process.argv[2]);
  const flow = new Flow(settings);
  const out = {};
  const deadline = setTimeout(() => {
    console.log(JSON.stringify({ error: 'flow timed out', partial: out }));
    for (const user of flow.users) user.child.kill();
    process.exit(1);
  }, (settings.timeout || 50) * 1000);
  body(flow, out)
    .then(async () => {
      await flow.close();
      clearTimeout(deadline);
      console.log(JSON.stringify(out));
      process.exit(0);
    })
    .catch(async (e) => {
      console.log(JSON.stringify({ error: String((e && e.stack) || e), partial: out }));
      for (const user of flow.users) user.child.kill();
      process.exit(1);
    });
}

// Run `step` and record its outcome under out[name] as {result} or {error}, never throwing:
// for behaviour that may be missing (xfail tests read these).
async function record(out, name, step) {
  try {
    out[name] = { result: await step() };
  } catch (e) {
    out[name] = { error: e.remote !== undefined ? e.remote : String((e && e.message) || e) };
  }
  return out[name];
}

// `promise`, or a rejection after `ms` (for SDK calls that may never settle, e.g. muc.join).
function within(promise, ms, what) {
  let timer;
  const timeout = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

module.exports = { runFlow, record, sleep, within };
