/**
 * Entry of the other client's own process (forked by abuse-other-process.ts). Commands arrive
 * over IPC; each is answered with the same id.
 */
import { OtherClient } from './abuse-other-client';
import type { OtherClientCommand, OtherClientReply } from './abuse-other-process';

const [url, apiKey, channel] = process.argv.slice(2);
const client = new OtherClient(url, apiKey, channel);

async function run(command: OtherClientCommand): Promise<OtherClientReply> {
  switch (command.do) {
    case 'start':
      await client.start();
      return { id: command.id };
    case 'stop':
      await client.stop();
      return { id: command.id };
    case 'enter':
      client.enter(command.phase!);
      return { id: command.id };
    case 'report':
      return { id: command.id, report: client.report() };
  }
}

process.on('message', (command: OtherClientCommand) => {
  run(command).then(
    (reply) => process.send!(reply),
    (error: Error) => process.send!({ id: command.id, error: error.message }),
  );
});

// The test process went away (or closed the channel): stop at once.
process.on('disconnect', () => {
  client.destroy();
  process.exit(0);
});
