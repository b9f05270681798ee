import {
  All,
  BadRequestException,
  ConflictException,
  Controller,
  Delete,
  HttpCode,
  Inject,
  NotFoundException,
  Param,
  Post,
  Put,
  Req,
  Res,
} from '@nestjs/common';
import type { Request, Response } from 'express';
import { DataSource } from 'typeorm';
import { DurableStream, PollContext } from '../../../src';
import { StreamOffsets } from '../../../src/durable-streams/stream-offset';
import { FeedCursorCodec } from '../../../src/http-polling/feed-cursor';
import { setSecurityHeaders } from '../../../src/durable-streams/stream-response';
import { Public } from '../../auth/api-key.guard';
import { AppendVisible } from './append-visible';
import {
  isJson,
  mediaType,
  ScratchFormat,
  streamContentType,
  type AppendRow,
} from './scratch-format';
import { SCRATCH_APPENDS, SCRATCH_STREAMS, SCRATCH_TABLES } from './scratch-tables';

const feedOf = (name: string) => `${SCRATCH_APPENDS}:${name}`;

/**
 * TEST ONLY (DURABLE_STREAMS_TEST_WRITES=1, never in the default configuration): writable scratch
 * streams at `/v1/stream/{name}`, without an API key, so the Durable Streams conformance suite can
 * create (`PUT`) and append (`POST`) what it then reads. Every append is a row of a tracked table
 * and is read back through the real path: trigger → change reader → index → hold core →
 * @DurableStream. Producers, Stream-Seq, closure, TTL and forks are not implemented.
 */
@Controller('v1/stream')
@Public()
export class ScratchStreamsController {
  private readonly offsets: StreamOffsets;

  constructor(
    @Inject(DataSource) private readonly db: DataSource,
    @Inject(SCRATCH_TABLES) _tables: boolean,
    private readonly visible: AppendVisible,
    codec: FeedCursorCodec,
  ) {
    this.offsets = new StreamOffsets(codec);
  }

  @Put(':name')
  async create(
    @Param('name') name: string,
    @Req() req: Request,
    @Res({ passthrough: true }) res: Response,
  ) {
    setSecurityHeaders(res);
    const contentType = header(req, 'content-type') ?? 'application/octet-stream';
    const existing = await streamContentType(this.db, name);
    if (existing !== null && mediaType(existing) !== mediaType(contentType)) {
      throw new ConflictException('the stream exists with another content type');
    }
    res.setHeader('Content-Type', existing ?? contentType);
    if (existing !== null) {
      res.setHeader(
        'Stream-Next-Offset',
        this.offsets.fromCursorText(await this.visible.head(feedOf(name))),
      );
      res.status(200);
      return undefined;
    }
    const body = bodyOf(req);
    // A PUT with a body creates the stream with that content; `[]` creates an empty JSON stream.
    const content = body.length > 0 ? this.content(contentType, body, true) : null;
    await this.db.query(`INSERT INTO ${SCRATCH_STREAMS} (name, content_type) VALUES ($1, $2)`, [
      name,
      contentType,
    ]);
    const next = content ? await this.append(name, content) : await this.visible.head(feedOf(name));
    res.setHeader('Stream-Next-Offset', this.offsets.fromCursorText(next));
    res.setHeader('Location', req.originalUrl.split('?')[0]);
    res.status(201);
    return undefined;
  }

  @Post(':name')
  @HttpCode(204)
  async add(
    @Param('name') name: string,
    @Req() req: Request,
    @Res({ passthrough: true }) res: Response,
  ) {
    setSecurityHeaders(res);
    const contentType = await streamContentType(this.db, name);
    if (contentType === null) throw new NotFoundException('no stream at this URL');
    const given = header(req, 'content-type');
    if (given !== undefined && mediaType(given) !== mediaType(contentType)) {
      throw new ConflictException(`the stream's content type is ${contentType}`);
    }
    const body = bodyOf(req);
    if (body.length === 0) throw new BadRequestException('an append needs a body');
    const next = await this.append(name, this.content(contentType, body, false)!);
    res.setHeader('Stream-Next-Offset', this.offsets.fromCursorText(next));
    return undefined;
  }

  @Delete(':name')
  @HttpCode(204)
  async remove(@Param('name') name: string) {
    const result: [unknown[], number] = await this.db.query(
      `DELETE FROM ${SCRATCH_STREAMS} WHERE name = $1`,
      [name],
    );
    if (result[1] === 0) throw new NotFoundException('no stream at this URL');
    await this.db.query(`DELETE FROM ${SCRATCH_APPENDS} WHERE stream = $1`, [name]);
  }

  @All(':name')
  @DurableStream({ feed: SCRATCH_APPENDS, partition: 'name', format: ScratchFormat })
  read(@PollContext() poll: PollContext, @Param('name') name: string): Promise<AppendRow[]> {
    // `a.id`: ORDER BY id would sort the id::text output column as text ('10' before '9').
    return poll.since === null
      ? this.db.query(
          `SELECT a.id::text AS id, a.body FROM ${SCRATCH_APPENDS} a WHERE a.stream = $1 ORDER BY a.id`,
          [name],
        )
      : this.db.query(
          `SELECT a.id::text AS id, a.body FROM ${SCRATCH_APPENDS} a
           WHERE a.stream = $1 AND a.id = ANY($2::bigint[])`,
          [name, poll.changedIds],
        );
  }

  /** What one write stores: the bytes, or for a JSON stream its messages (one array level flattened). */
  private content(contentType: string, body: Buffer, creating: boolean): Buffer | null {
    if (!isJson(contentType)) return body;
    let value: unknown;
    try {
      value = JSON.parse(body.toString('utf8'));
    } catch {
      throw new BadRequestException('the body is not valid JSON');
    }
    const messages = Array.isArray(value) ? value : [value];
    if (messages.length === 0) {
      if (creating) return null;
      throw new BadRequestException('an empty JSON array appends nothing');
    }
    return Buffer.from(JSON.stringify(messages));
  }

  /** Inserts one append and waits until it is indexed; its feed cursor. */
  private async append(name: string, content: Buffer): Promise<string> {
    const before = await this.visible.head(feedOf(name));
    const rows: { id: string }[] = await this.db.query(
      `INSERT INTO ${SCRATCH_APPENDS} (stream, body) VALUES ($1, $2) RETURNING id::text`,
      [name, content],
    );
    return this.visible.after(feedOf(name), before, rows[0].id);
  }
}

function header(req: Request, name: string): string | undefined {
  const value = req.headers[name];
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

function bodyOf(req: Request): Buffer {
  return Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
}
