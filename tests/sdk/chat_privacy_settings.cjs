// Privacy settings from the real SDK (issue 17 items 3 and 4): users.update
// with privacy_settings while connected.  alice turns typing and read
// receipts off: bob, connected, gets her messages but no typing and no read
// status.  carol, who shares nothing with alice, gets her last activity only
// while alice's last_seen is "everyone".
// Usage: node chat_privacy_settings.cjs '{"apiUrl", "chatUrl", "appId", "authKey"}'
'use strict';

const { runFlow, record, sleep } = require('./chat_lib.cjs');

runFlow(async (flow, out) => {
  const [alice, bob, carol] = await Promise.all(['alice', 'bob', 'carol'].map((n) => flow.online(n)));
  out.ids = { alice: alice.userId, bob: bob.userId, carol: carol.userId };

  // Before: typing reaches bob.
  await alice.call('chat.sendIsTypingStatus', bob.userId);
  out.typingBefore = await bob.waitFor('onMessageTypingListener', (isTyping) => isTyping === true);

  // bob writes; alice, connected, turns typing and read receipts off over REST.
  const hello = await bob.call('chat.send', alice.userId, { type: 'chat', body: 'hello alice', extension: { save_to_history: 1 } });
  const [, received] = await alice.waitFor('onMessageListener', (id, m) => m.id === hello);
  const updated = await alice.call('users.update', { privacy_settings: { typing_indicators: { enabled: false }, read_receipts: { enabled: false } } });
  out.updatedSettings = updated.user.privacy_settings;
  await alice.call('chat.sendIsTypingStatus', bob.userId);
  await alice.call('chat.sendReadStatus', { messageId: hello, dialogId: received.dialog_id, userId: bob.userId });
  const after = await alice.call('chat.send', bob.userId, { type: 'chat', body: 'typed quietly', extension: { save_to_history: 1, dialog_id: received.dialog_id } });
  out.afterBody = (await bob.waitFor('onMessageListener', (id, m) => m.id === after))[1].body;
  out.typingAfter = bob.seen('onMessageTypingListener').length;
  out.readStatus = bob.seen('onReadStatusListener');
  for (let i = 0; i < 100; i += 1) { // the read marker is stored after it was routed
    out.aliceUnread = await alice.call('chat.message.unreadCount', { chat_dialog_ids: [received.dialog_id] });
    if (out.aliceUnread.total === 0) break;
    await sleep(50);
  }
  const history = await bob.call('chat.message.list', { chat_dialog_id: received.dialog_id, _id: hello, mark_as_read: 0 });
  out.helloReadIds = history.items[0].read_ids;

  // Last seen: carol is a stranger to alice.
  await record(out, 'lastActivityDefault', () => carol.call('chat.getLastUserActivity', alice.userId));
  await record(out, 'setEveryone', () => alice.call('users.update', { privacy_settings: { last_seen: { visibility: 'everyone' } } }));
  await record(out, 'lastActivityEveryone', () => carol.call('chat.getLastUserActivity', alice.userId));
  await record(out, 'setNobody', () => alice.call('users.update', { privacy_settings: { last_seen: { visibility: 'nobody' } } }));
  await record(out, 'lastActivityNobody', () => carol.call('chat.getLastUserActivity', alice.userId));
});
