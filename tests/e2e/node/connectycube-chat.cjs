// Drives the unmodified ConnectyCube SDK 6.1.2 (Node build) chat for
// tests/e2e/test_websocket.py.  Usage: node connectycube-chat.cjs '<json>'
// with {chatUrl, domain, userId, password, toUserId, body}.  Prints one JSON
// object per line: {"event":"online"}, {"event":"message","userId":...,
// "body":...}, {"event":"offline"}.
const ConnectyCube = require("connectycube").default;

const options = JSON.parse(process.argv[2]);
const say = (object) => process.stdout.write(JSON.stringify(object) + "\n");

const timer = setTimeout(() => {
  say({ event: "timeout" });
  process.exit(3);
}, (options.timeout || 20) * 1000);

ConnectyCube.init(
  { appId: 1, authKey: "not-used-by-chat" },
  {
    endpoints: { api_url: "http://127.0.0.1:9", chat: options.domain, chat_url: options.chatUrl },
    debug: { mode: 0 },
  },
);

(async () => {
  try {
    const received = new Promise((resolve) => {
      ConnectyCube.chat.onMessageListener = (userId, message) => {
        if (message.body) resolve({ userId, body: message.body });
      };
    });
    await ConnectyCube.chat.connect({ userId: options.userId, password: options.password });
    say({ event: "online" });
    ConnectyCube.chat.send(options.toUserId, { type: "chat", body: options.body, extension: { save_to_history: 1 } });
    const message = await received;
    say({ event: "message", ...message });
    await ConnectyCube.chat.disconnect();
    say({ event: "offline" });
    clearTimeout(timer);
    process.exit(0);
  } catch (err) {
    say({ event: "failed", error: String((err && (err.condition || err.message)) || err) });
    clearTimeout(timer);
    process.exit(2);
  }
})();
