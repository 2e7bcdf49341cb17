// The SDK's MUC calls against xmppchat with [muc] connectycube_compat on:
// chat.muc.join / listOnlineUsers / leave must resolve and onKickOccupant
// must fire when the owner removes this user over REST.
// Argument: {apiUrl, chatUrl, domain, appId, userId, token, ownerToken, dialogId}.
const ConnectyCube = require("connectycube").default;

const options = JSON.parse(process.argv[2]);
const say = (object) => process.stdout.write(JSON.stringify(object) + "\n");
const within = (promise, what) => Promise.race([
  promise,
  new Promise((_, reject) => setTimeout(() => reject(new Error(`${what} did not resolve`)), 10000)),
]);

ConnectyCube.init(
  { appId: options.appId, authKey: "not-used-by-chat" },
  {
    endpoints: { api_url: options.apiUrl, chat: options.domain, chat_url: options.chatUrl },
    debug: { mode: 0 },
  },
);

(async () => {
  const out = {};
  try {
    const chat = ConnectyCube.chat;
    await within(chat.connect({ userId: options.userId, password: options.token }), "connect");
    await within(chat.muc.join(options.dialogId), "join");
    out.joined = true;
    out.online = await within(chat.muc.listOnlineUsers(options.dialogId), "listOnlineUsers");
    await within(chat.muc.leave(options.dialogId), "leave");
    out.left = true;
    try {
      await within(chat.muc.join(options.otherDialogId), "join of a foreign room");
      out.foreignJoin = "resolved";
    } catch (err) {
      out.foreignJoin = err && err.code ? { code: err.code, message: err.message } : String(err);
    }
    await within(chat.muc.join(options.dialogId), "second join");
    const kicked = new Promise((resolve) => {
      chat.onKickOccupant = (dialogId, initiatorId) => resolve({ dialogId, initiatorId });
    });
    const response = await fetch(`${options.apiUrl}/chat/Dialog/${options.dialogId}.json`, {
      method: "PUT",
      headers: { "Content-Type": "application/json", "CB-Token": options.ownerToken },
      body: JSON.stringify({ pull_all: { occupants_ids: [options.userId] } }),
    });
    out.removeStatus = response.status;
    out.kick = await within(kicked, "onKickOccupant");
    await chat.disconnect();
    out.done = true;
    say(out);
    process.exit(0);
  } catch (err) {
    say({ ...out, error: String((err && (err.message || err.condition)) || err) });
    process.exit(1);
  }
})();
