// One-shot cluster setup, run by the `init` service in compose.yaml:
//   mongosh --nodb --quiet --file /scripts/init.js
//
// 1. initiate the config server set "cfg" and the shard sets "shard1" and
//    "shard2" (skipped for any set that is already initiated),
// 2. wait until each has a primary,
// 3. add both shards through mongos (skipped for shards already added).
//
// Each member's host is its compose service name, because mongos and the
// replica-set members reach each other by whatever names the config lists and
// only service names resolve on the compose network.
//
// Any uncaught error makes mongosh exit non-zero, so the init container fails
// and `docker compose up --wait` reports it.

const TIMEOUT_MS = 180 * 1000;
const OPTS = 'serverSelectionTimeoutMS=2000&connectTimeoutMS=2000';

function report(msg) {
  print(`[init] ${msg}`);
}

// Call fn() until it returns a truthy value; errors count as "not yet".
function waitFor(what, fn) {
  const deadline = Date.now() + TIMEOUT_MS;
  let lastError = null;
  for (;;) {
    try {
      const result = fn();
      if (result) return result;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}` + (lastError ? `: ${lastError}` : ''));
    }
    sleep(1000);
  }
}

// Run an admin command and return its reply, also when the server answers
// with ok: 0 (mongosh throws for those; we want to look at codeName).
function adminCommand(adminDb, cmd) {
  try {
    return adminDb.runCommand(cmd);
  } catch (e) {
    if (e && e.codeName) return { ok: 0, code: e.code, codeName: e.codeName, errmsg: e.message };
    throw e; // network and other client-side errors
  }
}

function initiateReplicaSet(hostPort, config) {
  const name = config._id;
  // directConnection: the member is not (or not yet) a replica set we can
  // discover; talk to exactly this process.
  const adminDb = waitFor(`${name} (${hostPort}) to accept connections`, () => {
    const conn = connect(`mongodb://${hostPort}/admin?directConnection=true&${OPTS}`);
    conn.runCommand({ ping: 1 });
    return conn;
  });

  const status = adminCommand(adminDb, { replSetGetStatus: 1 });
  if (status.ok) {
    report(`${name}: already initiated`);
  } else if (status.codeName === 'NotYetInitialized') {
    const res = adminCommand(adminDb, { replSetInitiate: config });
    if (!res.ok && res.codeName !== 'AlreadyInitialized') {
      throw new Error(`replSetInitiate for ${name} failed: ${JSON.stringify(res)}`);
    }
    report(`${name}: initiated`);
  } else {
    throw new Error(`replSetGetStatus on ${name} failed: ${JSON.stringify(status)}`);
  }

  waitFor(`${name} to elect a primary`, () => adminDb.runCommand({ hello: 1 }).isWritablePrimary);
  report(`${name}: primary is up`);
}

initiateReplicaSet('configsvr:27019', {
  _id: 'cfg',
  configsvr: true, // required for a config server replica set
  members: [{ _id: 0, host: 'configsvr:27019' }],
});
initiateReplicaSet('shard1:27018', {
  _id: 'shard1',
  members: [{ _id: 0, host: 'shard1:27018' }],
});
initiateReplicaSet('shard2:27018', {
  _id: 'shard2',
  members: [{ _id: 0, host: 'shard2:27018' }],
});

// mongos only starts answering once "cfg" has a primary. Assigning the global
// `db` also points the `sh` helper at this connection.
db = waitFor('mongos to accept connections', () => {
  const conn = connect(`mongodb://mongos:27017/admin?${OPTS}`);
  conn.runCommand({ ping: 1 });
  return conn;
});

function shardExists(id) {
  const res = db.adminCommand({ listShards: 1 });
  return res.shards.some((s) => s._id === id);
}

// A retry re-checks listShards first, in case an earlier attempt did add the
// shard but its reply was lost.
function addShard(id, seed) {
  if (shardExists(id)) {
    report(`${id}: already added`);
    return;
  }
  waitFor(`mongos to add ${id}`, () => shardExists(id) || sh.addShard(seed).ok);
  report(`${id}: added`);
}

addShard('shard1', 'shard1/shard1:27018');
addShard('shard2', 'shard2/shard2:27018');

report('cluster ready');
