import type { INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Client } from 'pg';
import { ChangeReader, PollingModule } from '../src';
import { CHANGE_INDEX, type ChangeIndex } from '../src/change-index/change-index.interface';

export interface LiveReaderOptions {
  url: string;
  table: string;
  partition?: string;
  /** Change-log schema (default public). */
  schema?: string;
}

export interface LiveReaderReport {
  /** Change-log rows at the moment the load ended. */
  changesAtEnd: number;
  /** Changes the reader had indexed (index head position) at that moment. */
  indexedAtEnd: number;
  /** Time until the index held every change-log row after the load ended; null if it never did. */
  drainMs: number | null;
  /** Fraction of gate samples taken during the load that found the gate armed (writers NOTIFY). */
  armedShare: number;
  gateSamples: number;
}

const GATE_SAMPLE_MS = 20;
const DRAIN_TIMEOUT_MS = 10_000;

/**
 * Runs `load` with the real module's ChangeReader leading the change log (in-memory index, no
 * Redis), so the wake gate is armed and closed by the reader as in production. The change log is
 * expected to be empty when called: the index head then counts exactly the rows the reader took.
 */
export async function withLiveReader<T>(
  opts: LiveReaderOptions,
  load: () => Promise<T>,
): Promise<{ result: T; report: LiveReaderReport }> {
  const schema = opts.schema ?? 'public';
  const app: INestApplicationContext = await NestFactory.createApplicationContext(
    PollingModule.forRoot({
      postgres: { url: opts.url },
      schema,
      tables: [{ table: opts.table, partition: opts.partition }],
      installSchema: false,
    }),
    { logger: ['error'] },
  );
  const probe = new Client({ connectionString: opts.url });
  try {
    await probe.connect();
    await app.get(ChangeReader).whenLive();
    const index = app.get<ChangeIndex>(CHANGE_INDEX);
    const position = async () => (await index.head())?.position ?? 0;
    const count = async () =>
      Number(
        (await probe.query(`SELECT count(*)::int AS n FROM "${schema}".polling_changes`)).rows[0].n,
      );

    // Sample the gate while the load runs: how much of the time writers had to NOTIFY.
    let sampling = true;
    let samples = 0;
    let armed = 0;
    const sampler = (async () => {
      while (sampling) {
        const { rows } = await probe.query(
          `SELECT last_value <> 0 AS armed FROM "${schema}".polling_wake_gate`,
        );
        samples += 1;
        if (rows[0].armed) armed += 1; // any reader's bit (wake-gate.ts)
        await new Promise((resolve) => setTimeout(resolve, GATE_SAMPLE_MS));
      }
    })();
    let result: T;
    try {
      result = await load();
    } finally {
      sampling = false;
      await sampler;
    }

    const indexedAtEnd = await position();
    const changesAtEnd = await count();
    const started = Date.now();
    let drainMs: number | null = null;
    while (Date.now() - started < DRAIN_TIMEOUT_MS) {
      if ((await position()) >= changesAtEnd) {
        drainMs = Date.now() - started;
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    return {
      result,
      report: {
        changesAtEnd,
        indexedAtEnd,
        drainMs,
        armedShare: samples ? armed / samples : 0,
        gateSamples: samples,
      },
    };
  } finally {
    await probe.end().catch(() => undefined);
    await app.close();
  }
}
