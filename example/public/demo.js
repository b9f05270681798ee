// The demo page: everything live comes through the client SDK (served at /sdk/).
import { followFeed } from '/sdk/index.js';

const $ = (selector) => document.querySelector(selector);
const state = { channel: null, follow: null, messages: new Map() };

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
      .sort((a, b) => Number(a.id) - Number(b.id))
      .map((m) => {
        const li = document.createElement('li');
        li.dataset.id = m.id;
        const author = document.createElement('span');
        author.className = 'author';
        author.textContent = m.author;
        li.append(author, document.createTextNode(m.body));
        return li;
      }),
  );
}

function applyChanges(changes) {
  for (const change of changes) {
    if (change.op === 'delete') state.messages.delete(change.id);
    else state.messages.set(change.id, change.row);
  }
  renderMessages();
}

/** Loads the channel's history, then follows its feed from the head read before the page. */
async function join(channel) {
  state.follow?.abort();
  const follow = new AbortController();
  state.follow = follow;
  state.channel = channel;
  state.messages.clear();
  const res = await api(`/channels/${encodeURIComponent(channel)}/messages?limit=200`);
  const since = res.headers.get('Poll-Cursor');
  applyChanges((await res.json()).items.map((row) => ({ id: row.id, op: 'upsert', row })));
  status(`following #${channel}`);
  followFeed({
    url: `/channels/${encodeURIComponent(channel)}/changes`,
    since,
    headers,
    signal: follow.signal,
    onChanges: (body) => applyChanges(body.changes),
    onResync: () => join(channel),
    onError: (error, { delayMs }) => status(`retrying in ${Math.round(delayMs)} ms (${error})`),
  });
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

$('#key').addEventListener('change', () => state.channel && join(state.channel));
join($('#channel').value).catch((error) => status(String(error)));
