// Connection flows of the real SDK: connect with the password and with the
// REST session token, isConnected, disconnect and reconnect callbacks,
// pingWithTimeout, getLastUserActivity (+ status streaming pushes),
// markActive/markInactive, a wrong password.
// Usage: node chat_connect.cjs '{"apiUrl", "chatUrl", "appId", "authKey"}'
'use strict';

const { runFlow, record, sleep } = require('./chat_lib.cjs');

runFlow(async (flow, out) => {
  const alice = await flow.user('alice');
  const bob = await flow.user('bob');
  out.ids = { alice: alice.userId, bob: bob.userId };
  out.sessionUserIds = { alice: alice.sessionUserId, bob: bob.sessionUserId };

  // A failed connect leaves the SDK in its connecting state, so a third user tries the wrong password.
  const mallory = await flow.user('mallory');
  out.wrongPassword = await mallory.attempt('chat.connect', { userId: mallory.userId, password: 'not-the-password' });
  out.wrongToken = await (await flow.user('trent')).attempt('chat.connect', { userId: mallory.userId, password: 'f'.repeat(40) });
  // Last activity is visible to the users of a dialog the target has written in (issue 15
  // finding 9): a private dialog over REST, in which alice writes once connected.
  out.dialog = await alice.call('chat.dialog.create', { type: 3, occupants_ids: [bob.userId] });

  out.beforeConnect = await alice.get('chat.isConnected');
  out.connectPassword = await alice.call('chat.connect', { userId: alice.userId, password: alice.password });
  out.connectToken = await bob.call('chat.connect', { userId: bob.userId, password: bob.token });
  out.isConnected = { alice: await alice.get('chat.isConnected'), bob: await bob.get('chat.isConnected') };
  out.currentUserId = { alice: await alice.get('chat.currentUserId'), bob: await bob.get('chat.currentUserId') };
  out.jid = await alice.get('chat.helpers.userCurrentJid');

  await record(out, 'ping', () => alice.call('chat.pingWithTimeout', 3000));
  // REST sees who is online in the chat.
  await record(out, 'listOnline', async () => (await alice.call('users.listOnline', { limit: 100, offset: 0 })));
  await record(out, 'onlineCount', () => alice.call('users.getOnlineCount'));
  // Last activity of a user sharing no dialog is refused.
  await record(out, 'lastActivityStranger', () => alice.call('chat.getLastUserActivity', mallory.userId));

  // Last activity of an online user, then status streaming: bob watches alice, once she wrote to him.
  await record(out, 'lastActivityBeforeWriting', () => bob.call('chat.getLastUserActivity', alice.userId));
  const consentId = await alice.call('chat.send', bob.userId, { type: 'chat', body: 'hi bob', extension: { save_to_history: 1, dialog_id: out.dialog._id } });
  await bob.waitFor('onMessageListener', (id, m) => m.id === consentId);
  await record(out, 'lastActivityOnline', () => bob.call('chat.getLastUserActivity', alice.userId));
  await bob.call('chat.subscribeToUserLastActivityStatus', alice.userId);
  await sleep(300);

  // markInactive / markActive are fire-and-forget IQs; the stream must stay usable after them.
  // Messages are still delivered at once while inactive (only presences may be held back).
  await alice.call('chat.markInactive');
  await sleep(200);
  const inactiveId = await bob.call('chat.send', alice.userId, { type: 'chat', body: 'while inactive', extension: { save_to_history: 1, dialog_id: out.dialog._id } });
  out.whileInactive = (await alice.maybe('onMessageListener', (id, m) => m.id === inactiveId, 3000) || [null, {}])[1].body || null;
  await alice.call('chat.markActive');
  await record(out, 'pingAfterMark', () => alice.call('chat.pingWithTimeout', 3000));

  // The socket breaks: the SDK fires onDisconnectedListener, reconnects (1 s) and fires onReconnectListener.
  await alice.request('terminate');
  out.disconnected = (await alice.waitFor('onDisconnectedListener')) !== null;
  out.reconnected = (await alice.waitFor('onReconnectListener', () => true, 10000)) !== null;
  out.isConnectedAfterReconnect = await alice.get('chat.isConnected');
  out.jidAfterReconnect = await alice.get('chat.helpers.userCurrentJid');
  const message = 'after reconnect';
  await alice.call('chat.send', bob.userId, { type: 'chat', body: message, extension: { save_to_history: 0 } });
  const [fromId, received] = await bob.waitFor('onMessageListener', (id, m) => m.body === message);
  out.afterReconnect = { fromId, body: received.body };

  // Alice goes away: bob's subscription pushes her last activity.
  out.pushesBeforeLogout = bob.seen('onLastUserActivityListener');
  bob.drain('onLastUserActivityListener');
  out.disconnect = await alice.call('chat.disconnect');
  out.isConnectedAfterDisconnect = await alice.get('chat.isConnected');
  await record(out, 'lastActivityPush', () => bob.waitFor('onLastUserActivityListener', (id) => id === alice.userId, 4000));
  await record(out, 'lastActivityOffline', () => bob.call('chat.getLastUserActivity', alice.userId));
  out.lastActivityEvents = bob.seen('onLastUserActivityListener');
  await bob.call('chat.unsubscribeFromUserLastActivityStatus', alice.userId);

  // Offline delivery: bob writes while alice is away; she gets it (delayed) when she connects again.
  const whileAway = await bob.call('chat.send', alice.userId, { type: 'chat', body: 'while you were away', extension: { save_to_history: 1, dialog_id: out.dialog._id } });
  await sleep(300);
  out.reconnectAfterLogout = await alice.call('chat.connect', { userId: alice.userId, password: alice.password });
  const [offlineFrom, offline] = await alice.waitFor('onMessageListener', (id, m) => m.id === whileAway);
  out.offline = { fromId: offlineFrom, body: offline.body, delayed: Boolean(offline.delay), dialogId: offline.dialog_id };

  // Carbons: a second device of alice sees what alice sends (is_forwarded) and what she receives.
  const tablet = await flow.online('alice-tablet', { as: alice });
  const toBob = await alice.call('chat.send', bob.userId, { type: 'chat', body: 'from the phone', extension: { save_to_history: 1, dialog_id: out.dialog._id } });
  const [copyFrom, copy] = await tablet.waitFor('onMessageListener', (id, m) => m.id === toBob);
  out.carbon = { fromId: copyFrom, body: copy.body, isForwarded: copy.is_forwarded };
  const toAlice = await bob.call('chat.send', alice.userId, { type: 'chat', body: 'to both devices', extension: { save_to_history: 1, dialog_id: out.dialog._id } });
  out.bothDevices = [
    (await alice.waitFor('onMessageListener', (id, m) => m.id === toAlice))[1].body,
    (await tablet.waitFor('onMessageListener', (id, m) => m.id === toAlice))[1].body,
  ];
  await sleep(300);
  out.tabletStrayDelivered = tablet.seen('onDeliveredStatusListener').filter(([m]) => m === '');

  // The SDK writes arrays in extension as malformed XML (reference §5.3): the server ends that stream
  // with not-well-formed, the SDK reconnects by itself and the next message goes through.
  tablet.drain('onReconnectListener');
  await tablet.call('chat.send', bob.userId, { type: 'chat', body: 'bad', extension: { tags: ['a', 'b'] } });
  const [streamError] = await tablet.waitFor('onConnectionErrorListener');
  out.malformed = { condition: streamError.condition };
  await tablet.waitFor('onReconnectListener', () => true, 10000);
  const good = await tablet.call('chat.send', bob.userId, { type: 'chat', body: 'after the bad frame', extension: { save_to_history: 1, dialog_id: out.dialog._id } });
  out.afterMalformed = (await bob.waitFor('onMessageListener', (id, m) => m.id === good))[1].body;

  // A JWT user (init with {appId, token}) connects with the JWT as password and chats.
  if (flow.settings.jwt) {
    const jwtUser = await flow.user('jwt', { jwt: flow.settings.jwt });
    out.jwtConnect = await jwtUser.call('chat.connect', { userId: jwtUser.userId, password: flow.settings.jwt });
    out.jwtUserId = jwtUser.userId;
    const fromJwt = await jwtUser.call('chat.send', bob.userId, { type: 'chat', body: 'from a JWT user' });
    out.jwtMessage = await bob.waitFor('onMessageListener', (id, m) => m.id === fromJwt);
  }

  // A session token stops working as a chat password once the REST session is destroyed.
  await bob.call('destroySession');
  const late = await flow.user('late');
  out.deadToken = await late.attempt('chat.connect', { userId: bob.userId, password: bob.token });
});
