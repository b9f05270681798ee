import Redis from 'ioredis';
import { Client } from 'pg';

/** A short-lived PostgreSQL session for one piece of admin work. */
export async function withClient<T>(url: string, fn: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url });
  client.on('error', () => undefined); // a failure shows in the statement that hits it
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** A short-lived Redis connection for one command. */
export async function withRedis<T>(url: string, fn: (client: Redis) => Promise<T>): Promise<T> {
  const client = new Redis(url);
  try {
    return await fn(client);
  } finally {
    client.disconnect();
  }
}
