// The demo page: everything live comes through the client SDK (served at /sdk/).
import { followFeed } from '/sdk/index.js';
import { followChannel, TRANSPORTS } from './follow-channel.js';
import { loggedFetch } from './request-log.js';

const $ = (selector) => document.querySelector(selector);
const state = { channel: null, cursor: null, transport: 'long', follow: null, messages: new Map() };

const headers = () => ({ Authorization: `Bearer ${$('#key').value}` });
const status = (text) => ($('#status').textContent = text);

async function api(path, init = {}) {
  const res = await fetch(path, {
    ...init,
    headers: { ...headers(), 'content-type': 'application/json', ...(init.headers ?? {}) },
  });
  if (!res.ok && res.status !== 204) throw new Error(`${res.status} ${await res.text()}`);
  return res;
}

function renderMessages() {
  const list = $('#messages');
  list.replaceChildren(
    ...[...state.messages.values()]
      .sort((a, b) => Number(a.row.id) - Number(b.row.id))
      .map(({ row, latencyMs }) => {
        const li = document.createElement('li');
        li.dataset.id = row.id;
        const author = document.createElement('span');
        author.className = 'author';
        author.textContent = row.author;
        li.append(author, document.createTextNode(row.body));
        if (latencyMs !== null) {
          const latency = document.createElement('span');
          latency.className = 'latency';
          latency.title = 'from the row’s updated_at to the frame that drew it in this window';
          latency.textContent = `${latencyMs} ms`;
          li.append(latency);
        }
        return li;
      }),
  );
}

/** Changes from the feed (`live`) get a commit-to-screen figure; the history loaded on join none. */
function applyChanges(changes, live) {
  const drawn = [];
  for (const change of changes) {
    if (change.op === 'delete') state.messages.delete(change.id);
    else {
      const message = { row: change.row, latencyMs: null };
      state.messages.set(change.id, message);
      if (live) drawn.push(message);
    }
  }
  renderMessages();
  if (drawn.length === 0) return;
  // Called just before the browser paints the frame with these messages in it.
  requestAnimationFrame(() => {
    const now = Date.now();
    for (const message of drawn) message.latencyMs = now - Date.parse(message.row.updatedAt);
    renderMessages();
  });
}

/** Follows the current channel over the chosen transport from the last cursor seen. */
function follow() {
  state.follow?.abort();
  const name = TRANSPORTS[state.transport];
  $('#channel-transport').textContent = name;
  status(`following #${state.channel} over ${name}`);
  state.follow = followChannel({
    channel: state.channel,
    transport: state.transport,
    since: state.cursor,
    headers,
    onChanges: (body, cursor) => {
      state.cursor = cursor;
      applyChanges(body.changes, true);
    },
    onResync: () => join(state.channel),
    onStatus: status,
  });
}

/** Loads the channel's history, then follows its feed from the head read before the page. */
async function join(channel) {
  state.follow?.abort();
  state.channel = channel;
  state.messages.clear();
  const res = await api(`/channels/${encodeURIComponent(channel)}/messages?limit=200`);
  state.cursor = res.headers.get('Poll-Cursor');
  const { items } = await res.json();
  applyChanges(
    items.map((row) => ({ id: row.id, op: 'upsert', row })),
    false,
  );
  follow();
}

function startTaskFollow(id) {
  const li = document.createElement('li');
  li.dataset.id = id;
  li.dataset.status = 'pending';
  li.textContent = `task ${id}: pending`;
  $('#tasks').prepend(li);
  const follow = new AbortController();
  followFeed({
    url: `/tasks/${id}`,
    headers,
    signal: follow.signal,
    fetch: loggedFetch(`task ${id}`),
    onChanges: (body) => {
      const { task } = body;
      li.dataset.status = task.status;
      li.textContent = `task ${id}: ${task.status}${task.result ? ` → ${task.result}` : ''}`;
      if (task.status === 'done' || task.status === 'failed') follow.abort();
    },
  });
}

$('#join-form').addEventListener('submit', (event) => {
  event.preventDefault();
  join($('#channel').value).catch((error) => status(String(error)));
});

$('#send-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const input = $('#message-input');
  await api(`/channels/${encodeURIComponent(state.channel)}/messages`, {
    method: 'POST',
    body: JSON.stringify({ body: input.value }),
  }).catch((error) => status(String(error)));
  input.value = '';
});

$('#task-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const res = await api('/tasks', {
    method: 'POST',
    body: JSON.stringify({ input: $('#task-input').value }),
  }).catch((error) => status(String(error)));
  if (res) startTaskFollow((await res.json()).id);
});

$('#transport-switch').addEventListener('change', (event) => {
  state.transport = event.target.value;
  if (state.channel) follow();
});

// The same channel, user and transport in a window of its own: it follows the feed by itself.
$('#second-window').addEventListener('click', () => {
  const query = new URLSearchParams({
    channel: state.channel ?? $('#channel').value,
    transport: state.transport,
    key: $('#key').value,
  });
  window.open(`/?${query}`, '_blank', 'popup,width=1000,height=760');
});

$('#key').addEventListener('change', () => state.channel && join(state.channel));

// A second window starts where the first one was (?channel=&transport=&key=).
const params = new URLSearchParams(location.search);
if ([...$('#key').options].some((o) => o.value === params.get('key'))) {
  $('#key').value = params.get('key');
}
if (Object.hasOwn(TRANSPORTS, params.get('transport') ?? ''))
  state.transport = params.get('transport');
$(`#transport-switch input[value="${state.transport}"]`).checked = true;
if (params.get('channel')) $('#channel').value = params.get('channel');
join($('#channel').value).catch((error) => status(String(error)));
