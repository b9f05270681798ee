# syntax=docker/dockerfile:1
# Example app image for nestjs-polling (the library plus example/, see docker-compose.yml).
#
#   docker build -t nestjs-polling-example .
#   docker run --rm -p 127.0.0.1:3000:3000 -e DATABASE_URL=... -e MIGRATE_ON_START=1 nestjs-polling-example

# --- builder: full install (TypeScript, Nest, TypeORM, pg, ioredis, ...) and `npm run build` ---
FROM node:20-bookworm-slim AS builder
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
# tsc -p tsconfig.build.json && tsc -p tsconfig.client-esm.json && tsc -p tsconfig.example.json
RUN npm run build

# --- runtime ---------------------------------------------------------------------------------
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production \
    PORT=3000
WORKDIR /app
# The example app needs @nestjs/common, @nestjs/core, @nestjs/platform-express, typeorm, pg,
# ioredis, rxjs and reflect-metadata at run time. For the library these are peer/dev
# dependencies, so `npm ci --omit=dev` (or `npm prune --omit=dev`) would drop them: the runtime
# takes the builder's node_modules as installed from package-lock.json instead (larger image,
# but exactly the versions the build and the tests used).
COPY --from=builder --chown=node:node /app/package.json /app/package-lock.json ./
COPY --from=builder --chown=node:node /app/node_modules ./node_modules
COPY --from=builder --chown=node:node /app/dist ./dist
COPY --from=builder --chown=node:node /app/dist-example ./dist-example
COPY --from=builder --chown=node:node /app/example/public ./example/public
USER node
EXPOSE 3000
# Slim images have no curl/wget: probe GET /health with node (2xx = healthy).
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=5 \
  CMD ["node", "-e", "const p=process.env.PORT||3000;require('http').get({host:'127.0.0.1',port:p,path:'/health',timeout:2500},r=>process.exit(r.statusCode>=200&&r.statusCode<300?0:1)).on('timeout',()=>process.exit(1)).on('error',()=>process.exit(1))"]
CMD ["node", "dist-example/example/main.js"]
