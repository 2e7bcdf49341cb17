// Issue 17 item 2: changes made over REST reach the other user's unmodified
// SDK as the XMPP changes do -- an edit fires onMessageUpdateListener, a
// read mark onReadStatusListener, a delete for everyone onMessageDeleteListener
// (private and group dialogs), a dialog rename onSystemMessageListener --
// and an SDK edit shows over REST.
// Usage: node chat_restchanges.cjs '{"apiUrl", "chatUrl", "appId", "authKey"}'
'use strict';

const { runFlow, record } = require('./chat_lib.cjs');

runFlow(async (flow, out) => {
  const alice = await flow.online('alice');
  const bob = await flow.online('bob');
  out.ids = { alice: alice.userId, bob: bob.userId };
  const pair = await alice.call('chat.dialog.create', { type: 3, occupants_ids: [bob.userId] });
  const group = await alice.call('chat.dialog.create', { type: 2, name: 'rest changes', occupants_ids: [bob.userId] });
  out.dialogs = { pair: pair._id, group: group._id };

  // A message sent over XMPP and stored, then changed over REST.
  const first = await alice.call('chat.send', bob.userId, { type: 'chat', body: 'first', extension: { save_to_history: 1, dialog_id: pair._id } });
  await bob.waitFor('onMessageListener', (u, m) => m.id === first);
  out.first = first;
  await record(out, 'restEdit', async () => {
    await alice.call('chat.message.update', first, { chat_dialog_id: pair._id, message: 'first, edited over REST' });
    return bob.waitFor('onMessageUpdateListener', (id) => id === first, 4000);
  });
  await record(out, 'restRead', async () => {
    await bob.call('chat.message.update', first, { chat_dialog_id: pair._id, read: 1 });
    return alice.waitFor('onReadStatusListener', (id) => id === first, 4000);
  });
  await record(out, 'restDelete', async () => {
    await alice.call('chat.message.delete', [first], { force: 1 });
    return bob.waitFor('onMessageDeleteListener', (id) => id === first, 4000);
  });

  // Group: a REST message, edited over REST; an SDK edit seen over REST.
  const created = await alice.call('chat.message.create', { chat_dialog_id: group._id, message: 'group', send_to_chat: 1 });
  out.groupMessage = created._id;
  await bob.waitFor('onMessageListener', (u, m) => m.id === created._id);
  await record(out, 'restGroupEdit', async () => {
    await alice.call('chat.message.update', created._id, { chat_dialog_id: group._id, message: 'group, edited over REST' });
    return bob.waitFor('onMessageUpdateListener', (id) => id === created._id, 4000);
  });
  await record(out, 'sdkEditOverRest', async () => {
    await alice.call('chat.editMessage', { to: group._id, dialogId: group._id, body: 'group, edited by the SDK', originMessageId: created._id, last: true });
    await bob.waitFor('onMessageUpdateListener', (id, last, body) => id === created._id && body === 'group, edited by the SDK', 4000);
    return (await bob.call('chat.message.list', { chat_dialog_id: group._id, mark_as_read: 0 })).items.map((m) => m.message);
  });

  // A REST rename of the group reaches bob as a system message.
  await record(out, 'restRename', async () => {
    await alice.call('chat.dialog.update', group._id, { name: 'renamed over REST' });
    const [m] = await bob.waitFor('onSystemMessageListener', (msg) => msg.extension && msg.extension.notification_type === 'dialog_updated', 4000);
    return m;
  });
});
