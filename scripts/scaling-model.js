#!/usr/bin/env node
/*
 * A load model for many followers (docs/scaling.md): from figures measured in this repository, it
 * projects app instances, app requests, Redis and PostgreSQL load for a number of followers and a
 * change rate, in three shapes of traffic, and names the first part to saturate.
 *
 *   node scripts/scaling-model.js [followers=1000000] [changesPerSecond=100]
 *
 * Every input is a constant below with where it was measured; change them to your own figures.
 */

const MEASURED = {
  // bench held-polls row: 19,000 held on one process, event-loop lag p99 2.4 ms.
  heldPerInstanceMax: 19_000,
  // bench held-polls row: RSS per held long poll.
  kbPerHeldPoll: 28,
  // bench fan-out row: 10,000 responses to one change in 1.33 s on one core.
  responsesPerInstancePerS: 7_500,
  // Redis INFO commandstats around 500 uncached polls woken by one change (this probe):
  // one index script per app request, ~58 µs of Redis CPU each.
  redisScriptsPerAppRequest: 1.03,
  redisUsPerScript: 58,
  // bench cache-collapse row: app requests per change for 2,000 followers of one cursor, per
  // caching node (nginx with proxy_cache_lock), when the change comes within the lock timeout.
  appRequestsPerChangePerCacheNode: 1,
  // docker/nginx.conf: proxy_cache_lock_timeout (s); a quieter feed's polls fall through.
  lockTimeoutS: 5,
  // bench aggregator row: identical waiters share one handler run (1 row query per change).
  queriesPerDistinctAnswer: 1,
};

const PLAN = {
  // Keep each instance at half the measured maximum of held polls (headroom for a failover).
  heldPerInstance: MEASURED.heldPerInstanceMax / 2,
  // Default long-poll wait (s): a follower with nothing new asks again this often.
  waitS: 25,
  // Caching nodes (CDN edges or nginx boxes) that each collapse on their own.
  cacheNodes: 50,
  // A long-polling follower asks again as soon as it has an answer: its round trip (~100 ms)
  // bounds how often, on a feed that changes faster than that.
  maxPollsPerFollowerPerS: 10,
  // Redis: one master runs one script at a time; plan for half of one core.
  redisCoreBudget: 0.5,
  // PostgreSQL: indexed lookups of the changed rows one core answers per second, kept at half.
  pgQueriesPerCore: 10_000,
  instanceMin: 2,
};

function scenario(name, { followers, feeds, changesPerS, cached }) {
  const changesPerFeedPerS = changesPerS / feeds;
  const followersPerFeed = followers / feeds;
  // A cached feed collapses when it changes within the lock timeout; a quieter one's polls fall
  // through to the app after it (docs/operations.md), as if it were not cached.
  const collapses = cached && changesPerFeedPerS * MEASURED.lockTimeoutS >= 1;
  let heldAtApp;
  let appRequestsPerS;
  if (collapses) {
    // Cursors converge on the feed heads: one request per head, feed and caching node.
    heldAtApp = feeds * PLAN.cacheNodes;
    appRequestsPerS =
      Math.min(changesPerS, feeds * PLAN.maxPollsPerFollowerPerS) *
      PLAN.cacheNodes *
      MEASURED.appRequestsPerChangePerCacheNode;
  } else {
    // Every follower holds a poll at the app, asked again after each change or each wait.
    heldAtApp = followers;
    appRequestsPerS =
      followers * Math.min(PLAN.maxPollsPerFollowerPerS, changesPerFeedPerS + 1 / PLAN.waitS);
  }
  const instances = Math.max(
    PLAN.instanceMin,
    Math.ceil(heldAtApp / PLAN.heldPerInstance),
    Math.ceil(appRequestsPerS / (MEASURED.responsesPerInstancePerS / 2)),
  );
  const redisScriptsPerS = appRequestsPerS * MEASURED.redisScriptsPerAppRequest + changesPerS;
  const redisCores = (redisScriptsPerS * MEASURED.redisUsPerScript) / 1e6;
  // A distinct answer runs the handler once; identical waiters on one instance share the run; a
  // 204 runs none.
  const pgQueriesPerS = collapses
    ? appRequestsPerS * MEASURED.queriesPerDistinctAnswer
    : changesPerS * Math.min(followersPerFeed, instances) * MEASURED.queriesPerDistinctAnswer;
  const pgCores = (pgQueriesPerS + changesPerS) / PLAN.pgQueriesPerCore;
  const load = [
    ['Redis index (one master, one slot)', redisCores / PLAN.redisCoreBudget],
    ['PostgreSQL (row lookups, 4 cores)', pgCores / 4],
  ].sort((a, b) => b[1] - a[1]);
  return {
    scenario: name,
    'held at app': Math.round(heldAtApp),
    'app req/s': Math.round(appRequestsPerS),
    instances,
    'GB RAM held': +((heldAtApp * MEASURED.kbPerHeldPoll) / 1e6).toFixed(1),
    'Redis scripts/s': Math.round(redisScriptsPerS),
    'Redis cores': +redisCores.toFixed(2),
    'pub/sub msgs/s': Math.round(changesPerS * instances),
    'PG queries/s': Math.round(pgQueriesPerS),
    'first limit': `${load[0][0]} at ${Math.round(load[0][1] * 100)}% of budget`,
  };
}

function main() {
  const followers = Number(process.argv[2] ?? 1_000_000);
  const changesPerS = Number(process.argv[3] ?? 100);
  const rows = [
    scenario('A: one public feed, CDN', { followers, feeds: 1, changesPerS, cached: true }),
    scenario('B: 1,000 public feeds, CDN', { followers, feeds: 1_000, changesPerS, cached: true }),
    scenario('C: per-user private feeds', {
      followers,
      feeds: followers,
      changesPerS,
      cached: false,
    }),
  ];
  console.log(`${followers} followers, ${changesPerS} changes/s`);
  console.log(JSON.stringify({ measured: MEASURED, plan: PLAN }));
  console.table(rows);
}

main();
