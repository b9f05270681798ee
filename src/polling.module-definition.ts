import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { PollingModuleOptions } from './polling-options.interface';

export const {
  ConfigurableModuleClass: ConfigurablePollingModule,
  MODULE_OPTIONS_TOKEN: POLLING_MODULE_OPTIONS,
  OPTIONS_TYPE: POLLING_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: POLLING_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<PollingModuleOptions>({ moduleName: 'Polling' })
  .setClassMethodName('forRoot')
  .setExtras({ isGlobal: true }, (definition, extras) => ({
    ...definition,
    global: extras.isGlobal,
  }))
  .build();
