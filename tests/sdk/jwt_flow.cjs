// A token user: the app passes its own HS256 JWT as the session token (init {appId, token}).
// Usage: node jwt_flow.cjs '{"apiUrl": "...", "appId": 1, "token": "<jwt>"}'
'use strict';

const ConnectyCube = require('connectycube').default;

const config = JSON.parse(process.argv[2]);
const out = {};

(async () => {
  ConnectyCube.init(
    { appId: config.appId, token: config.token },
    { endpoints: { api_url: config.apiUrl, chat: 'localhost', chat_url: 'ws://127.0.0.1:9' }, debug: { mode: 0 } },
  );
  const session = await ConnectyCube.getSession();
  out.session = { user_id: session.user_id, application_id: session.application_id };
  // getSession() does not set the SDK's current user id, so users.update() cannot be used here.
  out.users = await ConnectyCube.users.getV2({ id: session.user_id });
  out.dialogs = await ConnectyCube.chat.dialog.list();
  console.log(JSON.stringify(out));
})().catch((e) => {
  console.log(JSON.stringify({ error: { code: e && e.code, info: e && e.info, text: String(e) }, partial: out }));
  process.exit(1);
});
