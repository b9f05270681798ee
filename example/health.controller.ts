import { Controller, Get, HttpCode, ServiceUnavailableException } from '@nestjs/common';
import { ChangeReader } from '../src';
import { Public } from './auth/api-key.guard';

/** Public liveness of the change reader (the operate issue adds Terminus and metrics). */
@Controller('health')
export class HealthController {
  constructor(private readonly reader: ChangeReader) {}

  @Get()
  @Public()
  @HttpCode(200)
  health() {
    const status = {
      status: this.reader.live ? 'ok' : 'starting',
      reader: { role: this.reader.role, live: this.reader.live, lag: this.reader.lag },
    };
    if (!this.reader.live) throw new ServiceUnavailableException(status);
    return status;
  }
}
