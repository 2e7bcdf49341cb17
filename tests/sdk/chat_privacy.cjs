// Privacy lists from the real SDK (XEP-0016 as the SDK encodes it): alice
// blocks bob (deny + mutualBlock) and carol (one-way deny), makes the list
// default; bob's message to alice comes back to bob as onMessageErrorListener,
// alice's to bob is refused too (mutual), carol can still receive from alice;
// getNames, getList, update (allow bob), decline default, delete.
// Usage: node chat_privacy.cjs '{"apiUrl", "chatUrl", "appId", "authKey"}'
'use strict';

const { runFlow, record, sleep } = require('./chat_lib.cjs');

const NAME = 'blocked';

runFlow(async (flow, out) => {
  const [alice, bob, carol] = await Promise.all(['alice', 'bob', 'carol'].map((n) => flow.online(n)));
  out.ids = { alice: alice.userId, bob: bob.userId, carol: carol.userId };

  await alice.call('chat.privacylist.create', {
    name: NAME,
    items: [
      { user_id: bob.userId, action: 'deny', mutualBlock: true },
      { user_id: carol.userId, action: 'deny' },
    ],
  });
  await alice.call('chat.privacylist.setAsDefault', NAME);
  out.names = await alice.call('chat.privacylist.getNames');
  out.list = await alice.call('chat.privacylist.getList', NAME);

  // Blocked sender: bob's message bounces with an error, alice sees nothing.
  const fromBob = await bob.call('chat.send', alice.userId, { type: 'chat', body: 'let me in', extension: { save_to_history: 1 } });
  out.bobError = await bob.waitFor('onMessageErrorListener', (id) => id === fromBob);
  // Mutual block: alice cannot message bob either.
  const toBob = await alice.call('chat.send', bob.userId, { type: 'chat', body: 'you are blocked', extension: { save_to_history: 1 } });
  out.aliceError = await alice.maybe('onMessageErrorListener', (id) => id === toBob, 3000);
  // One-way block: carol cannot reach alice, alice can reach carol.
  const fromCarol = await carol.call('chat.send', alice.userId, { type: 'chat', body: 'carol here', extension: { save_to_history: 1 } });
  out.carolError = await carol.waitFor('onMessageErrorListener', (id) => id === fromCarol);
  const toCarol = await alice.call('chat.send', carol.userId, { type: 'chat', body: 'hi carol', extension: { save_to_history: 1 } });
  out.carolGot = await carol.maybe('onMessageListener', (id, m) => m.id === toCarol, 3000);
  await sleep(300);
  out.aliceGot = alice.seen('onMessageListener').map(([id, m]) => m.body);
  out.bobGot = bob.seen('onMessageListener').map(([id, m]) => m.body);

  // Unblock bob with update (allow removes him); carol's one-way block stays.
  await alice.call('chat.privacylist.update', { name: NAME, items: [{ user_id: bob.userId, action: 'allow' }] });
  out.listAfterUpdate = await alice.call('chat.privacylist.getList', NAME);
  const again = await bob.call('chat.send', alice.userId, { type: 'chat', body: 'unblocked', extension: { save_to_history: 1 } });
  out.afterUnblock = await alice.waitFor('onMessageListener', (id, m) => m.id === again);

  // delete() of the default list empties it (the SDK's delete is create({items: []}), which the
  // SDK's own block-list code uses while the list is default); declined, it is deleted.
  out.deleteWhileDefault = await alice.attempt('chat.privacylist.delete', NAME);
  out.listAfterEmptying = await alice.call('chat.privacylist.getList', NAME);
  const carolFree = await carol.call('chat.send', alice.userId, { type: 'chat', body: 'carol unblocked', extension: { save_to_history: 1 } });
  out.afterEmptying = await alice.waitFor('onMessageListener', (id, m) => m.id === carolFree);
  await alice.call('chat.privacylist.setAsDefault', null);
  out.namesAfterDecline = await alice.call('chat.privacylist.getNames');
  await record(out, 'delete', () => alice.call('chat.privacylist.delete', NAME));
  out.namesAfterDelete = await alice.call('chat.privacylist.getNames');
  out.listAfterDelete = await alice.call('chat.privacylist.getList', NAME);
  const free = await bob.call('chat.send', alice.userId, { type: 'chat', body: 'free again', extension: { save_to_history: 1 } });
  out.afterDelete = await alice.waitFor('onMessageListener', (id, m) => m.id === free);
});
