// The real ConnectyCube JS SDK 6.1.2 against a loopback xmppchat REST service.
// Usage: node rest_flow.cjs '{"apiUrl": "http://127.0.0.1:PORT", "appId": 1, "authKey": "..."}'
// Prints one JSON line with what the SDK saw; exits 1 (with {"error": ...}) on the first failure.
'use strict';

const ConnectyCube = require('connectycube').default;

const config = JSON.parse(process.argv[2]);
const out = {};

function fail(step, e) {
  const info = e && (e.info !== undefined || e.code !== undefined) ? { code: e.code, info: e.info } : String(e && e.stack || e);
  console.log(JSON.stringify({ error: { step, detail: info }, partial: out }));
  process.exit(1);
}

async function step(name, f) {
  try {
    return await f();
  } catch (e) {
    fail(name, e);
  }
}

(async () => {
  ConnectyCube.init(
    { appId: config.appId, authKey: config.authKey },
    {
      endpoints: { api_url: config.apiUrl, chat: 'localhost', chat_url: 'ws://127.0.0.1:9' },
      debug: { mode: 0 },
      timeout: 10000,
    },
  );
  const suffix = String(Date.now() % 1e9);
  const app = await step('createSession', () => ConnectyCube.createSession());
  out.appSession = { token: app.token, user_id: app.user_id || 0 };

  const bob = await step('signup bob', () => ConnectyCube.users.signup({ login: `bob${suffix}`, password: 'bob-password', full_name: 'Bob' }));
  const alice = await step('signup alice', () => ConnectyCube.users.signup({ login: `alice${suffix}`, password: 'alice-password', tag_list: ['sdk', 'test'] }));
  out.signup = { alice: alice.user, bob: bob.user };

  const logged = await step('auth.login', () => ConnectyCube.auth.login({ login: `alice${suffix}`, password: 'alice-password' }));
  out.login = logged;
  const session = await step('getSession', () => ConnectyCube.getSession());
  out.session = { user_id: session.user_id, token: session.token };

  const updated = await step('users.update', () => ConnectyCube.users.update({ full_name: 'Alice SDK' }));
  out.userUpdate = updated.user;
  const found = await step('users.getV2', () => ConnectyCube.users.getV2({ id: { in: [alice.user.id, bob.user.id] }, limit: 10, offset: 0 }));
  out.getV2 = found;

  const dialog = await step('dialog.create', () => ConnectyCube.chat.dialog.create({ type: 2, name: 'SDK group', occupants_ids: [bob.user.id], extensions: { topic: 'tests' } }));
  out.dialogCreate = dialog;
  const privateDialog = await step('dialog.create private', () => ConnectyCube.chat.dialog.create({ type: 3, occupants_ids: [bob.user.id] }));
  const privateAgain = await step('dialog.create private again', () => ConnectyCube.chat.dialog.create({ type: 3, occupants_ids: [bob.user.id] }));
  out.privateSame = privateDialog._id === privateAgain._id;

  const list = await step('dialog.list', () => ConnectyCube.chat.dialog.list({ type: { in: [2, 3] }, sort_desc: 'created_at', limit: 10 }));
  out.dialogList = list;
  // issue 17 item 5: a configured extension field as a list filter, and the
  // server's broadcast dialogs in every user's list
  out.dialogsByTopic = await step('dialog.list by extension', () => ConnectyCube.chat.dialog.list({ topic: 'tests' }));
  out.dialogsByExtensions = await step('dialog.list by extensions[]', () => ConnectyCube.chat.dialog.list({ extensions: { topic: { in: ['tests', 'x'] } } }));
  out.broadcasts = await step('dialog.list broadcasts', () => ConnectyCube.chat.dialog.list({ type: 1 }));
  const renamed = await step('dialog.update', () => ConnectyCube.chat.dialog.update(dialog._id, { name: 'Renamed', push_all: { pinned_messages_ids: [] } }));
  out.dialogUpdate = renamed;

  const message = await step('message.create', () => ConnectyCube.chat.message.create({ chat_dialog_id: dialog._id, message: 'hello from the SDK', markable: 1 }));
  out.messageCreate = message;
  const messages = await step('message.list', () => ConnectyCube.chat.message.list({ chat_dialog_id: dialog._id, sort_desc: 'date_sent', limit: 100, skip: 0 }));
  out.messageList = messages;
  await step('message.update read', () => ConnectyCube.chat.message.update('', { read: 1, chat_dialog_id: dialog._id }));
  out.unread = await step('message.unreadCount', () => ConnectyCube.chat.message.unreadCount({ chat_dialog_ids: [dialog._id] }));
  out.unreadDialogsIds = await step('message.unreadCount dialogs_ids', () => ConnectyCube.chat.message.unreadCount({ dialogs_ids: [dialog._id] }));
  await step('message.addReaction', () => ConnectyCube.chat.message.addReaction(message._id, '👍'));
  out.reactions = await step('message.listReactions', () => ConnectyCube.chat.message.listReactions(message._id));

  const content = Buffer.from('attachment bytes from the SDK');
  const blob = await step('storage.createAndUpload', () => ConnectyCube.storage.createAndUpload({ file: content, name: 'note.txt', type: 'text/plain', size: content.length, public: false }));
  out.blob = blob;
  const url = ConnectyCube.storage.privateUrl(blob.uid);
  const downloaded = await step('download privateUrl', async () => {
    const response = await fetch(url);
    return { status: response.status, body: await response.text() };
  });
  out.download = downloaded;

  const pub = await step('dialog.create public', () => ConnectyCube.chat.dialog.create({ type: 4, name: 'SDK lobby' }));
  out.publicSubscribe = await step('dialog.subscribe', () => ConnectyCube.chat.dialog.subscribe(pub._id));
  out.notifications = await step('dialog.updateNotificationsSettings', () => ConnectyCube.chat.dialog.updateNotificationsSettings(dialog._id, 0));

  const record = await step('data.create', () => ConnectyCube.data.create('UserReports', { reportedUserId: bob.user.id, reason: 'sdk' }));
  out.dataCreate = record;
  out.dataList = await step('data.list', () => ConnectyCube.data.list('UserReports', { reportedUserId: bob.user.id, limit: 10 }));
  out.dataUpdate = await step('data.update', () => ConnectyCube.data.update('UserReports', { _id: record._id, reason: 'updated' }));
  await step('data.delete', () => ConnectyCube.data.delete('UserReports', record._id));
  out.dataAfterDelete = await step('data.list after delete', () => ConnectyCube.data.list('UserReports', { limit: 10 }));

  out.dialogDelete = await step('dialog.delete', () => ConnectyCube.chat.dialog.delete(dialog._id, { force: 1 }));
  const after = await step('dialog.list after delete', () => ConnectyCube.chat.dialog.list({ _id: dialog._id }));
  out.afterDelete = after;

  // A 401 on a dead token must reach the SDK's expected envelope.
  await step('destroySession', () => ConnectyCube.destroySession());
  out.done = true;
  console.log(JSON.stringify(out));
})().catch((e) => fail('unexpected', e));
