// The live request log: every request the SDK sends goes through `loggedFetch`, which adds a row
// when it leaves and fills in what the answer said (status, time held, Poll-Wake, cursor).

const MAX_ROWS = 80;
const rows = () => document.querySelector('#log tbody');

/** What a request is, read from the request itself (the SDK may fall back from SSE to long poll). */
function transportOf(url, init) {
  if (init.method === 'POST') return 'batch';
  if (init.headers.Accept === 'text/event-stream') return 'SSE';
  return new URL(url, location.href).searchParams.get('wait') === '0' ? 'short poll' : 'long poll';
}

function addRow(cells) {
  const tr = document.createElement('tr');
  for (const [name, text] of Object.entries(cells)) {
    const td = document.createElement('td');
    td.className = name;
    td.textContent = text;
    if (name === 'cursor') td.title = text;
    tr.append(td);
  }
  rows().prepend(tr);
  while (rows().children.length > MAX_ROWS) rows().lastElementChild.remove();
  return (name, text) => {
    const td = tr.querySelector(`.${name}`);
    td.textContent = text;
    if (name === 'cursor') td.title = text;
  };
}

const clock = () => new Date().toLocaleTimeString([], { hour12: false });
const pathOf = (url) => new URL(url, location.href).pathname;

/** The cursor an answer carries: Poll-Cursor, or each feed's in a batch body. */
async function answerCursor(res, transport) {
  if (transport !== 'batch' || res.status !== 200) return res.headers.get('Poll-Cursor') ?? '—';
  const { feeds } = await res.clone().json();
  return Object.values(feeds)
    .map((feed) => feed.cursor)
    .join(' ');
}

/** A `fetch` for the SDK that logs each request under `panel`. */
export function loggedFetch(panel) {
  return async (url, init) => {
    const transport = transportOf(url, init);
    const stream = transport === 'SSE';
    const set = addRow({
      time: clock(),
      panel,
      transport,
      request: `${init.method} ${pathOf(url)}`,
      status: 'held…',
      held: '',
      wake: '',
      // A stream resumes from Last-Event-ID; an answer's cursor replaces this when it comes.
      cursor: stream ? (init.headers['Last-Event-ID'] ?? '—') : '',
    });
    const started = performance.now();
    try {
      const res = await fetch(url, init);
      set('status', String(res.status));
      set('held', `${Math.round(performance.now() - started)} ms`);
      // An event stream stays open: each event gets its own row (logStreamEvent).
      set('wake', stream ? 'stream open' : (res.headers.get('Poll-Wake') ?? '—'));
      // Read beside the SDK (a batch body from a clone): the log never holds up or fails a request.
      if (!stream)
        answerCursor(res, transport).then(
          (cursor) => set('cursor', cursor),
          () => set('cursor', '—'),
        );
      return res;
    } catch (error) {
      set('status', error.name === 'AbortError' ? 'aborted' : 'failed');
      set('held', `${Math.round(performance.now() - started)} ms`);
      throw error;
    }
  };
}

/** One event of an open stream: the server sends one only when the feed changed. */
export function logStreamEvent(panel, cursor) {
  addRow({
    time: clock(),
    panel,
    transport: 'SSE',
    request: 'event',
    status: 'event',
    held: '—',
    wake: 'change (pushed)',
    cursor,
  });
}
