import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, SwaggerModule, type OpenAPIObject } from '@nestjs/swagger';

/**
 * The example's OpenAPI document: the UI at /docs, the JSON at /docs-json (both public). The
 * @LongPoll / @Poll / @BatchPoll routes document their own parameters and answers. Call before
 * `listen`, so the routes are registered before Nest's 404 handler.
 */
export function setupOpenApi(app: INestApplication): void {
  const config = new DocumentBuilder()
    .setTitle('nestjs-polling example')
    .setDescription(
      'Chat channels and background tasks as live HTTP feeds: short polls, long polls and a ' +
        'batch poll over one commit-safe change stream. Send Authorization: Bearer <api key>.',
    )
    .addBearerAuth()
    .addSecurityRequirements('bearer')
    .build();
  const document = declarePathParameters(SwaggerModule.createDocument(app, config));
  SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'docs-json' });
}

/**
 * Routes whose partition comes from a function of the request (`channelOf(req.params.channel)`)
 * declare no @Param, so their `{channel}` is added here: a path template parameter must be listed.
 */
function declarePathParameters(document: OpenAPIObject): OpenAPIObject {
  for (const [path, item] of Object.entries(document.paths)) {
    const names = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
    for (const operation of [item.get, item.post, item.put, item.patch, item.delete]) {
      if (!operation) continue;
      operation.parameters ??= [];
      for (const name of names) {
        const declared = operation.parameters.some(
          (p) => 'in' in p && p.in === 'path' && p.name === name,
        );
        if (!declared) {
          operation.parameters.push({
            name,
            in: 'path',
            required: true,
            schema: { type: 'string' },
          });
        }
      }
    }
  }
  return document;
}
