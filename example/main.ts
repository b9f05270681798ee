import { startExampleApp } from './example-app';

startExampleApp().catch((error: Error) => {
  console.error(`example app failed to start: ${error.message}`);
  process.exit(1);
});
