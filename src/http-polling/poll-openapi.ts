import type * as Swagger from '@nestjs/swagger';
import { loadOptionalPeer } from '../optional-peer';

/**
 * OpenAPI documentation of the polling routes, through @nestjs/swagger when the app has it (an
 * optional peer, loaded on first use). Without it, or if it fails to load, the decorators are
 * left out and the routes work the same.
 */
let swagger: typeof Swagger | null | undefined;

function loadSwagger(): typeof Swagger | null {
  if (swagger === undefined) {
    try {
      swagger = loadOptionalPeer<typeof Swagger>('@nestjs/swagger');
    } catch {
      swagger = null;
    }
  }
  return swagger;
}

const text = { type: 'string' } as const;
const ERROR_BODY = {
  type: 'object',
  properties: {
    statusCode: { type: 'integer' },
    error: { type: 'string' },
    message: { type: 'string' },
  },
} as const;

const CURSOR_HEADERS = {
  'Poll-Cursor': { description: 'The cursor to send as `since` next (opaque).', schema: text },
  ETag: {
    description: '`"<cursor>"`: send it back as If-None-Match on a short poll.',
    schema: text,
  },
  'Poll-Wake': {
    description:
      'Why the answer came: immediate (it was there), change (a held request was woken by a ' +
      'change), timeout (the wait elapsed), shutdown (the server is stopping), reset (the index ' +
      'was rebuilt: refetch).',
    schema: { type: 'string', enum: ['immediate', 'change', 'timeout', 'shutdown', 'reset'] },
  },
  'Poll-Interval': {
    description: 'Seconds a short-polling client should wait before its next poll.',
    schema: { type: 'integer' },
  },
};
const RETRY_AFTER = {
  'Retry-After': {
    description: 'Seconds to wait before asking again.',
    schema: { type: 'integer' },
  },
};

export interface PollOpenApiOptions {
  /** @LongPoll: the request may be held (wait, Prefer, 204). */
  hold: boolean;
  defaultWaitS?: number;
  maxWaitS?: number;
  /** A route parameter name is documented as the path parameter that picks the partition. */
  partition?: unknown;
}

/** ApiQuery / ApiHeader / ApiResponse decorators for a @Poll or @LongPoll route. */
export function pollRouteOpenApi(options: PollOpenApiOptions): MethodDecorator[] {
  const s = loadSwagger();
  if (!s) return [];
  const { hold } = options;
  const bounds = [
    options.defaultWaitS !== undefined
      ? `default ${options.defaultWaitS}`
      : 'default: module setting',
    options.maxWaitS !== undefined
      ? `at most ${options.maxWaitS}`
      : 'clamped to the module maximum',
  ].join(', ');
  const decorators: MethodDecorator[] = [
    s.ApiQuery({
      name: 'since',
      required: false,
      schema: text,
      description:
        'Cursor from the previous answer (Poll-Cursor or body `cursor`). Absent: the answer is the ' +
        'feed head at once. Malformed or altered: 400.',
    }),
    s.ApiHeader({
      name: 'If-None-Match',
      required: false,
      schema: text,
      description: hold
        ? 'With `wait=0`: the ETag of the previous answer; 304 while the feed has not changed.'
        : 'The ETag of the previous answer; 304 while the feed has not changed (no handler run).',
    }),
    s.ApiResponse({
      status: 200,
      description: 'Changes after `since` (or the head when there was no `since`).',
      headers: CURSOR_HEADERS,
    }),
    s.ApiResponse({
      status: 304,
      description: 'Short poll with a matching If-None-Match: nothing changed.',
      headers: CURSOR_HEADERS,
    }),
    s.ApiResponse({
      status: 400,
      description: 'Malformed cursor, wait or partition.',
      schema: ERROR_BODY,
    }),
    s.ApiResponse({
      status: 409,
      description:
        'Must refetch: the cursor is from another index generation or older than retention. ' +
        'Reload, then follow from `cursor` (the head).',
      schema: { ...ERROR_BODY, properties: { ...ERROR_BODY.properties, cursor: text } },
      headers: CURSOR_HEADERS,
    }),
    s.ApiResponse({
      status: 429,
      description: hold
        ? 'Too many held requests for this client, or polling too often.'
        : 'Polling too often for this client.',
      schema: ERROR_BODY,
      headers: RETRY_AFTER,
    }),
    s.ApiResponse({
      status: 503,
      description:
        'Too many held requests on this server, change index unavailable, or shutting down.',
      schema: ERROR_BODY,
      headers: RETRY_AFTER,
    }),
  ];
  if (typeof options.partition === 'string') {
    decorators.push(
      s.ApiParam({
        name: options.partition,
        required: true,
        schema: text,
        description: 'Which partition of the feed to follow.',
      }),
    );
  }
  if (hold) {
    decorators.push(
      s.ApiQuery({
        name: 'wait',
        required: false,
        schema: { type: 'number', minimum: 0 },
        description: `Seconds to hold the request until something changes (${bounds}). 0: a short poll.`,
      }),
      s.ApiHeader({
        name: 'Prefer',
        required: false,
        schema: { type: 'string', example: 'wait=25' },
        description:
          '`wait=N` (RFC 7240) instead of the wait parameter; answered with Preference-Applied.',
      }),
      s.ApiResponse({
        status: 204,
        description: 'The wait elapsed (or the server is shutting down): nothing changed.',
        headers: CURSOR_HEADERS,
      }),
    );
  }
  return decorators;
}

/** Documents a @BatchPoll route: its body and answers. */
export function batchPollOpenApi(): MethodDecorator[] {
  const s = loadSwagger();
  if (!s) return [];
  return [
    s.ApiBody({
      description:
        'Feeds by the path a client would GET, each with its cursor (null: start at the head).',
      schema: {
        type: 'object',
        required: ['feeds'],
        properties: {
          feeds: { type: 'object', additionalProperties: { type: 'string', nullable: true } },
          wait: { type: 'number', minimum: 0 },
        },
      },
    }),
    s.ApiResponse({
      status: 200,
      description: 'Only the feeds that changed: `{feeds: {path: {status, cursor, body}}}`.',
      headers: { 'Poll-Wake': CURSOR_HEADERS['Poll-Wake'] },
    }),
    s.ApiResponse({
      status: 204,
      description: 'The wait elapsed: no feed changed.',
      headers: { 'Poll-Wake': CURSOR_HEADERS['Poll-Wake'] },
    }),
    s.ApiResponse({ status: 400, description: 'Malformed body, unknown feed or cursor.' }),
    s.ApiResponse({ status: 429, description: 'Too many held requests.', headers: RETRY_AFTER }),
    s.ApiResponse({ status: 503, description: 'Server busy or stopping.', headers: RETRY_AFTER }),
  ];
}

/** Keeps a library controller (metrics) out of the app's OpenAPI document. */
export function excludeFromOpenApi(target: abstract new (...args: never[]) => unknown): void {
  loadSwagger()?.ApiExcludeController()(target);
}
