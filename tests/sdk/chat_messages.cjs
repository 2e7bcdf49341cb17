// 1-1 messaging between two real SDK users: a private dialog over REST, a
// photo uploaded with storage.createAndUpload, messages with extension
// (save_to_history, dialog_id, custom fields, attachment), onSentMessageCallback
// with stream management, automatic and explicit delivered receipts, read
// status, typing, system messages, edit/delete/reactions pushes, and the
// REST view of the traffic (list, unreadCount, update, delete).
// Usage: node chat_messages.cjs '{"apiUrl", "chatUrl", "appId", "authKey"}'
'use strict';

const { runFlow, record, sleep } = require('./chat_lib.cjs');

const PHOTO = 'not really a PNG, but bytes uploaded by the SDK';

runFlow(async (flow, out) => {
  const alice = await flow.online('alice', { streamManagement: true });
  const bob = await flow.online('bob', { token: true });
  out.ids = { alice: alice.userId, bob: bob.userId };
  const dialog = await alice.call('chat.dialog.create', { type: 3, occupants_ids: [bob.userId] });
  out.dialogId = dialog._id;

  const blob = await alice.call('storage.createAndUpload', {
    file: { $buffer: PHOTO }, name: 'photo.png', type: 'image/png', size: PHOTO.length, public: false,
  });
  out.blob = { id: blob.id, uid: blob.uid, size: blob.size, content_type: blob.content_type };
  const attachment = { type: 'image', uid: blob.uid, id: String(blob.id), size: blob.size, name: 'photo.png', content_type: 'image/png' };

  // 1. A message with extension: bob sees every field; alice gets the SM ack and the automatic receipt.
  const extension = { save_to_history: 1, dialog_id: dialog._id, color: 'blue', custom: { nested: 'v', deeper: { x: 1 } }, attachments: [attachment] };
  const first = await alice.call('chat.send', bob.userId, { type: 'chat', body: 'hello bob', extension });
  out.firstId = first;
  const [fromId, message] = await bob.waitFor('onMessageListener', (id, m) => m.id === first);
  out.received = { fromId, message };
  const [lost, sent] = await alice.waitFor('onSentMessageCallback');
  out.sentCallback = { lost, sentId: sent && (sent.id || (sent.attrs && sent.attrs.id)), sent };
  out.autoDelivered = await alice.waitFor('onDeliveredStatusListener', (messageId) => messageId === first);

  // Three quick messages: three acks, in order (the server's h counts every stanza).
  const burst = [];
  for (const n of [1, 2, 3]) burst.push(await alice.call('chat.send', bob.userId, { type: 'chat', body: `burst ${n}`, extension: { dialog_id: dialog._id } }));
  out.burst = burst;
  out.burstAcked = [];
  for (let n = 0; n < 3; n += 1) out.burstAcked.push((await alice.waitFor('onSentMessageCallback'))[1].id);
  out.burstReceived = [];
  for (const id of burst) out.burstReceived.push((await bob.waitFor('onMessageListener', (u, m) => m.id === id))[1].body);

  // The attachment is downloadable by the recipient with its own token.
  const url = await bob.call('storage.privateUrl', blob.uid);
  const response = await fetch(url);
  out.download = { status: response.status, body: await response.text() };

  // 2. Without dialog_id: no automatic receipt; bob confirms delivery and read explicitly.
  const second = await alice.call('chat.send', bob.userId, { type: 'chat', body: 'second', extension: { save_to_history: 1 } });
  const [, secondMessage] = await bob.waitFor('onMessageListener', (id, m) => m.id === second);
  out.secondMessage = secondMessage;
  out.secondAutoDelivered = await alice.maybe('onDeliveredStatusListener', (messageId) => messageId === second, 1000);
  await bob.call('chat.sendDeliveredStatus', { messageId: second, dialogId: dialog._id, userId: alice.userId });
  out.explicitDelivered = await alice.waitFor('onDeliveredStatusListener', (messageId) => messageId === second);
  out.unreadBeforeRead = await bob.call('chat.message.unreadCount', { chat_dialog_ids: [dialog._id] });
  await bob.call('chat.sendReadStatus', { messageId: first, dialogId: dialog._id, userId: alice.userId });
  out.read = await alice.waitFor('onReadStatusListener', (messageId) => messageId === first);
  await sleep(200);
  out.unreadAfterRead = await bob.call('chat.message.unreadCount', { chat_dialog_ids: [dialog._id] });

  // 3. Typing start/stop (1-1: dialogId null).
  await alice.call('chat.sendIsTypingStatus', bob.userId);
  out.typingStart = await bob.waitFor('onMessageTypingListener', (isTyping) => isTyping === true);
  await alice.call('chat.sendIsStopTypingStatus', bob.userId);
  out.typingStop = await bob.waitFor('onMessageTypingListener', (isTyping) => isTyping === false);

  // 4. System message.
  const systemId = await alice.call('chat.sendSystemMessage', bob.userId, { body: 'dialog updated', extension: { param1: 'value1', obj: { a: 1 }, dialogId: dialog._id } });
  out.systemId = systemId;
  out.system = await bob.waitFor('onSystemMessageListener', (m) => m.id === systemId);

  // 5. REST view of the chat traffic (bob, then alice).
  out.history = await bob.call('chat.message.list', { chat_dialog_id: dialog._id, sort_asc: 'date_sent', limit: 100, mark_as_read: 0 });
  out.unreadAfterList = await bob.call('chat.message.unreadCount', { chat_dialog_ids: [dialog._id] });
  await bob.call('chat.message.update', second, { read: 1, chat_dialog_id: dialog._id });
  out.unreadAfterUpdate = await bob.call('chat.message.unreadCount', { chat_dialog_ids: [dialog._id] });
  out.dialogAfter = (await alice.call('chat.dialog.list', { _id: dialog._id })).items[0];
  out.bobDialogAfter = (await bob.call('chat.dialog.list', { _id: dialog._id })).items[0];

  // 6. Edit, reaction and delete pushed to the other user (dialog features).
  await record(out, 'edit', async () => {
    await alice.call('chat.editMessage', { to: bob.userId, dialogId: dialog._id, body: 'hello bob (edited)', originMessageId: first, last: false });
    return bob.waitFor('onMessageUpdateListener', (id) => id === first, 4000);
  });
  await record(out, 'editedHistory', async () => (await bob.call('chat.message.list', { chat_dialog_id: dialog._id, _id: first })).items);
  await record(out, 'reaction', async () => {
    await bob.call('chat.message.addReaction', first, '🔥');
    return alice.waitFor('onMessageReactionsListener', (id) => id === first, 4000);
  });
  await record(out, 'reactionSwap', async () => {
    await bob.call('chat.message.updateReaction', first, '👍', '🔥');
    return alice.waitFor('onMessageReactionsListener', (id) => id === first, 4000);
  });
  out.reactionsListed = await alice.call('chat.message.listReactions', first);
  // Only the author may edit or delete: bob's attempts on alice's message change nothing.
  await bob.call('chat.editMessage', { to: alice.userId, dialogId: dialog._id, body: 'forged', originMessageId: first, last: false });
  await bob.call('chat.deleteMessage', { to: alice.userId, dialogId: dialog._id, messageId: first });
  out.forgedEditPushed = await alice.maybe('onMessageUpdateListener', (id) => id === first, 1500);
  out.forgedDeletePushed = await alice.maybe('onMessageDeleteListener', (id) => id === first, 200);
  out.forgeryErrors = { alice: alice.seen('onMessageErrorListener'), bob: bob.seen('onMessageErrorListener') };
  out.afterForgery = (await alice.call('chat.message.list', { chat_dialog_id: dialog._id, _id: first, mark_as_read: 0 })).items.map((m) => m.message);
  await record(out, 'delete', async () => {
    await alice.call('chat.deleteMessage', { to: bob.userId, dialogId: dialog._id, messageId: second });
    return bob.waitFor('onMessageDeleteListener', (id) => id === second, 4000);
  });
  await record(out, 'afterXmppDelete', async () => (await alice.call('chat.message.list', { chat_dialog_id: dialog._id })).items.map((m) => m._id));

  // 7. REST-created messages reach the chat: send_to_chat and system messages.
  await record(out, 'restSendToChat', async () => {
    const created = await alice.call('chat.message.create', { chat_dialog_id: dialog._id, message: 'from REST', send_to_chat: 1, markable: 1, mood: 'good' });
    const [userId, m] = await bob.waitFor('onMessageListener', (u, msg) => msg.id === created._id, 4000);
    return { createdId: created._id, userId, message: m };
  });
  await record(out, 'restSystem', async () => {
    const created = await alice.call('chat.message.createSystem', { recipientId: bob.userId, note: 'rest system' });
    const [m] = await bob.waitFor('onSystemMessageListener', (msg) => msg.extension && msg.extension.note === 'rest system', 4000);
    return { created, message: m };
  });

  // 8. REST delete of the first message (for everybody).
  await alice.call('chat.message.delete', [first], { force: 1 });
  out.afterRestDelete = (await bob.call('chat.message.list', { chat_dialog_id: dialog._id })).items.map((m) => m._id);
});
