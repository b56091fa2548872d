'use strict';

// A short tour against a running shoald: SHOAL_ADDR=127.0.0.1:50051 node example.js

const { ShoalClient } = require('./index.js');

async function main() {
  const client = new ShoalClient();
  try {
    const { revision } = await client.put('example/greeting', 'hello');
    const greeting = await client.get('example/greeting');
    console.log(`put example/greeting at revision ${revision}; get: ${greeting.value}`);
    console.log(`example/visits: ${await client.increment('example/visits')}`);

    await client.put('example/colors/red', '#f00');
    await client.put('example/colors/green', '#0f0');

    // Range is not a snapshot: watching from its first page's revision + 1 misses nothing after it.
    let watchFrom;
    for await (const page of client.rangePages({ prefix: 'example/colors/' }, { pageSize: 10 })) {
      watchFrom ??= page.revision + 1;
      for (const entry of page.entries) console.log(`range: ${entry.key} = ${entry.value}`);
    }

    await client.put('example/colors/blue', '#00f', { ttlMs: 300 });
    await client.delete('example/colors/red');

    // The put, the delete, then the expiry of the blue key's TTL.
    let seen = 0;
    for await (const event of client.watch('example/colors/', { fromRevision: watchFrom })) {
      const value = event.value === null ? '' : ` = ${event.value}`;
      console.log(`watch: ${event.type} ${event.key}${value} at revision ${event.revision}`);
      if (++seen === 3) break; // ends the watch call
    }
  } finally {
    client.close();
  }
}

main().catch((err) => {
  console.error(err.message);
  process.exit(1);
});
