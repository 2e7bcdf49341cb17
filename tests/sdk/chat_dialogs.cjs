// Dialog flows between three real SDK users: group messages to the room JID
// without a MUC join (delivered to occupants, receipts, typing), history over
// REST, edit/delete/reaction pushes in the group, MUC join/leave and online
// occupants, a public dialog (subscribe, getPublicOccupants, messages),
// admins add/remove and notification settings.
// Usage: node chat_dialogs.cjs '{"apiUrl", "chatUrl", "appId", "authKey"}'
'use strict';

const { runFlow, record, sleep, within } = require('./chat_lib.cjs');

runFlow(async (flow, out) => {
  const [alice, bob, carol] = await Promise.all(['alice', 'bob', 'carol'].map((n) => flow.online(n)));
  out.ids = { alice: alice.userId, bob: bob.userId, carol: carol.userId };
  const group = await alice.call('chat.dialog.create', { type: 2, name: 'SDK group', occupants_ids: [bob.userId, carol.userId] });
  out.group = group;

  // Group message without joining: both occupants get it from the room JID.
  const body = 'hello group';
  const first = await alice.call('chat.send', group._id, { type: 'groupchat', body, extension: { save_to_history: 1, dialog_id: group._id, topic: 'news' } });
  out.firstId = first;
  out.bobGot = await bob.waitFor('onMessageListener', (id, m) => m.id === first);
  out.carolGot = await carol.waitFor('onMessageListener', (id, m) => m.id === first);
  // The occupants' SDKs send automatic receipts to alice's user JID.
  out.delivered = [
    await alice.waitFor('onDeliveredStatusListener', (m, d, u) => m === first && u === bob.userId),
    await alice.waitFor('onDeliveredStatusListener', (m, d, u) => m === first && u === carol.userId),
  ];
  await bob.call('chat.sendReadStatus', { messageId: first, dialogId: group._id, userId: alice.userId });
  out.read = await alice.waitFor('onReadStatusListener', (m, d, u) => m === first && u === bob.userId);

  await alice.call('chat.sendIsTypingStatus', group._id);
  out.groupTyping = await carol.waitFor('onMessageTypingListener', (isTyping, u) => isTyping === true && u === alice.userId);
  await alice.call('chat.sendIsStopTypingStatus', group._id);

  // History from chat traffic, seen over REST by another occupant.
  await sleep(200);
  out.history = (await carol.call('chat.message.list', { chat_dialog_id: group._id, sort_asc: 'date_sent', mark_as_read: 0 })).items;
  out.unread = await carol.call('chat.message.unreadCount', { chat_dialog_ids: [group._id] });
  out.carolDialog = (await carol.call('chat.dialog.list', { _id: group._id })).items[0];

  // Edit, reaction, delete pushed to the other occupants.
  await record(out, 'edit', async () => {
    await alice.call('chat.editMessage', { to: group._id, dialogId: group._id, body: 'hello group (edited)', originMessageId: first, last: true });
    return carol.waitFor('onMessageUpdateListener', (id) => id === first, 4000);
  });
  await record(out, 'reaction', async () => {
    await bob.call('chat.message.addReaction', first, '👍');
    return Promise.all([
      alice.waitFor('onMessageReactionsListener', (id) => id === first, 4000),
      carol.waitFor('onMessageReactionsListener', (id) => id === first, 4000),
    ]);
  });
  const second = await bob.call('chat.send', group._id, { type: 'groupchat', body: 'to be deleted', extension: { save_to_history: 1, dialog_id: group._id } });
  await carol.waitFor('onMessageListener', (id, m) => m.id === second);
  await record(out, 'delete', async () => {
    await bob.call('chat.deleteMessage', { to: group._id, dialogId: group._id, messageId: second });
    return carol.waitFor('onMessageDeleteListener', (id) => id === second, 4000);
  });
  await record(out, 'historyAfterChanges', async () => (await alice.call('chat.message.list', { chat_dialog_id: group._id, mark_as_read: 0 })).items);

  // MUC join / online occupants / leave (SDK 6.1.2 needs the compat self-presence, §5.17).
  await record(out, 'join', () => within(alice.call('chat.muc.join', group._id), 3000, 'muc.join'));
  await record(out, 'joinOccupant', async () => {
    await within(bob.call('chat.muc.join', group._id), 3000, 'muc.join');
    return alice.waitFor('onJoinOccupant', (d, u) => u === bob.userId, 3000);
  });
  await record(out, 'onlineUsers', () => within(alice.call('chat.muc.listOnlineUsers', group._id), 3000, 'listOnlineUsers'));
  await record(out, 'leave', () => within(bob.call('chat.muc.leave', group._id), 3000, 'muc.leave'));
  await record(out, 'leaveOccupant', () => alice.waitFor('onLeaveOccupant', (d, u) => u === bob.userId, 3000));

  // A user removed from the group cannot write to it any more; the others get nothing.
  await alice.call('chat.dialog.update', group._id, { pull_all: { occupants_ids: [carol.userId] } });
  const outsider = await carol.call('chat.send', group._id, { type: 'groupchat', body: 'am I still here?', extension: { save_to_history: 1, dialog_id: group._id } });
  out.removedError = await carol.maybe('onMessageErrorListener', (id) => id === outsider, 3000);
  out.removedDelivered = await bob.maybe('onMessageListener', (id, m) => m.id === outsider, 1000);

  // Admins.
  out.addAdmins = await alice.call('chat.dialog.addAdmins', group._id, [bob.userId]);
  out.removeAdmins = await alice.call('chat.dialog.removeAdmins', group._id, [bob.userId]);
  out.addAdminsByOccupant = await bob.attempt('chat.dialog.addAdmins', group._id, [bob.userId]);

  // Notification settings (per user).
  out.notificationsDefault = await bob.call('chat.dialog.getNotificationsSettings', group._id);
  out.notificationsUpdate = await bob.call('chat.dialog.updateNotificationsSettings', group._id, 0);
  out.notificationsAfter = await bob.call('chat.dialog.getNotificationsSettings', group._id);
  out.notificationsOther = await alice.call('chat.dialog.getNotificationsSettings', group._id);

  // Bob leaves (dialog.delete without force): he is no longer an occupant and cannot write.
  await bob.call('chat.dialog.delete', group._id);
  out.afterLeave = (await alice.call('chat.dialog.list', { _id: group._id })).items[0];
  out.bobListAfterLeave = (await bob.call('chat.dialog.list', { _id: group._id })).items;
  const leftMessage = await bob.call('chat.send', group._id, { type: 'groupchat', body: 'after leaving', extension: { save_to_history: 1, dialog_id: group._id } });
  out.leftError = await bob.maybe('onMessageErrorListener', (id) => id === leftMessage, 3000);
  // clearHistory empties the history for the caller.
  await alice.call('chat.dialog.clearHistory', group._id);
  out.afterClear = (await alice.call('chat.message.list', { chat_dialog_id: group._id, mark_as_read: 0 })).items;

  // Public dialog: subscribe, occupants, messages to subscribers.
  const lobby = await alice.call('chat.dialog.create', { type: 4, name: 'SDK lobby' });
  out.lobby = lobby;
  out.subscribe = await bob.call('chat.dialog.subscribe', lobby._id);
  await carol.call('chat.dialog.subscribe', lobby._id);
  out.publicOccupants = await alice.call('chat.dialog.getPublicOccupants', lobby._id, { limit: 10, skip: 0 });
  const hello = await bob.call('chat.send', lobby._id, { type: 'groupchat', body: 'hi lobby', extension: { save_to_history: 1, dialog_id: lobby._id } });
  await record(out, 'publicMessage', () => carol.waitFor('onMessageListener', (id, m) => m.id === hello, 4000));
  await carol.call('chat.dialog.unsubscribe', lobby._id);
  out.publicOccupantsAfter = await alice.call('chat.dialog.getPublicOccupants', lobby._id, { limit: 10, skip: 0 });
  const notSubscribed = await carol.call('chat.send', lobby._id, { type: 'groupchat', body: 'not subscribed', extension: { save_to_history: 1, dialog_id: lobby._id } });
  // Issue 17: a public dialog is open, anyone may post; subscribers receive.
  out.notSubscribedDelivered = await bob.maybe('onMessageListener', (id, m) => m.id === notSubscribed, 3000);
  out.notSubscribedError = await carol.maybe('onMessageErrorListener', (id) => id === notSubscribed, 500);

  // Other users' private history is not readable over REST.
  out.strangerHistory = await carol.attempt('chat.message.list', { chat_dialog_id: (await alice.call('chat.dialog.create', { type: 3, occupants_ids: [bob.userId] }))._id });
  // The SDK's own enum says DialogType.PUBLIC = 1, which the REST docs (and the server) call broadcast
  // (reference §4.4): an app using the enum gets the broadcast rule.
  out.sdkEnumPublic = require('connectycube').DialogType.PUBLIC;
  out.createWithSdkEnum = await alice.attempt('chat.dialog.create', { type: out.sdkEnumPublic, name: 'enum public' });
});
