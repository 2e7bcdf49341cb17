// One user of the unmodified ConnectyCube SDK 6.1.2 per process (the SDK's
// config is a process-wide singleton, so two users cannot share a process).
// Driven by chat_lib.cjs over stdin/stdout, one JSON object per line:
//   in:  {"id": n, "op": "setup"|"call"|"get"|"terminate"|"exit", ...}
//   out: {"reply": n, "ok": true, "result": ...} | {"reply": n, "ok": false, "error": ...}
//        {"event": "<listener name>", "args": [...]}   for every chat listener the SDK fires
'use strict';

const readline = require('node:readline');
const ConnectyCube = require('connectycube').default;

const LISTENERS = [
  'onMessageListener', 'onSystemMessageListener', 'onMessageErrorListener', 'onMessageTypingListener',
  'onMessageUpdateListener', 'onMessageDeleteListener', 'onMessageReactionsListener',
  'onDeliveredStatusListener', 'onReadStatusListener', 'onSentMessageCallback',
  'onLastUserActivityListener', 'onDisconnectedListener', 'onReconnectListener',
  'onConnectionErrorListener', 'onJoinOccupant', 'onLeaveOccupant', 'onKickOccupant',
];

function plain(value) {
  // Listener arguments may hold ltx elements (e.g. <delay>): keep them as XML text.
  return JSON.parse(JSON.stringify(value === undefined ? null : value, (key, v) => {
    if (v && typeof v === 'object' && typeof v.getChild === 'function' && typeof v.toString === 'function') {
      return v.toString();
    }
    return v;
  }));
}

function say(object) {
  process.stdout.write(JSON.stringify(object) + '\n');
}

function errorOf(e) {
  if (e && (e.info !== undefined || e.code !== undefined)) return { code: e.code, info: e.info };
  return String((e && (e.stack || e.message)) || e);
}

function resolvePath(path) {
  const names = path.split('.');
  let owner = ConnectyCube;
  for (const name of names.slice(0, -1)) owner = owner[name];
  return { owner, name: names[names.length - 1] };
}

function decodeArg(value) {
  // {"$buffer": "text"} stands for Buffer.from(text) (storage uploads).
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    if (typeof value.$buffer === 'string') return Buffer.from(value.$buffer);
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = decodeArg(v);
    return out;
  }
  if (Array.isArray(value)) return value.map(decodeArg);
  return value;
}

async function setup(request) {
  ConnectyCube.init(
    request.token ? { appId: request.appId, token: request.token } : { appId: request.appId, authKey: request.authKey },
    {
      endpoints: { api_url: request.apiUrl, chat: request.domain || 'localhost', chat_url: request.chatUrl },
      chat: {
        streamManagement: { enable: Boolean(request.streamManagement) },
        reconnect: { enable: true, timeInterval: 1 },
      },
      debug: { mode: 0 },
      timeout: 10000,
    },
  );
  for (const name of LISTENERS) {
    ConnectyCube.chat[name] = (...args) => say({ event: name, args: plain(args) });
  }
  if (request.token) {
    // A token user (e.g. an app's own JWT): no auth key, no signup; the token is the session.
    const session = await ConnectyCube.getSession();
    return { userId: session.user_id, token: request.token, sessionUserId: session.user_id };
  }
  let userId = request.userId;
  if (!request.existing) {
    await ConnectyCube.createSession();
    const user = { login: request.login, password: request.password, full_name: request.fullName || request.login };
    userId = (await ConnectyCube.users.signup(user)).user.id;
  }
  const session = await ConnectyCube.createSession({ login: request.login, password: request.password });
  return { userId, token: session.token, sessionUserId: session.user_id };
}

async function handle(request) {
  switch (request.op) {
    case 'setup':
      return setup(request);
    case 'call': {
      const { owner, name } = resolvePath(request.path);
      if (typeof owner[name] !== 'function') throw new Error(`${request.path} is not a function`);
      return owner[name](...decodeArg(request.args || []));
    }
    case 'get': {
      const { owner, name } = resolvePath(request.path);
      return owner[name];
    }
    case 'terminate':
      ConnectyCube.chat.terminate();
      return true;
    case 'exit':
      setImmediate(() => process.exit(0));
      return true;
    default:
      throw new Error(`unknown op ${request.op}`);
  }
}

const input = readline.createInterface({ input: process.stdin });
input.on('line', (line) => {
  if (!line.trim()) return;
  const request = JSON.parse(line);
  Promise.resolve()
    .then(() => handle(request))
    .then((result) => say({ reply: request.id, ok: true, result: plain(result) }))
    .catch((e) => say({ reply: request.id, ok: false, error: errorOf(e) }));
});
input.on('close', () => process.exit(0));
