import { connect as tcpConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { bridgeClient, bridgePostgresJs, postgres, tlsBridgeForSuite } from '../support/clients.js';
import { RawClient } from '../support/raw-client.js';
import { Bytes, packet, readMessages, startupMessage } from '../support/wire.js';

// PostgreSQL over TLS offers SCRAM-SHA-256-PLUS; the bridge answers the client's SSLRequest with
// N, so it must not pass that offer on (libpq calls it a protocol violation).
const suite = tlsBridgeForSuite();

/** The mechanisms of an AuthenticationSASL body. */
function mechanisms(body: Uint8Array): string[] {
  expect(Buffer.from(body).readInt32BE(0)).toBe(10);
  return Buffer.from(body.subarray(4)).toString().split('\0').filter(Boolean);
}

/** What PostgreSQL itself offers a client that negotiated TLS with it. */
async function offeredOverTls(): Promise<string[]> {
  const db = postgres();
  const tcp = tcpConnect(db.port, db.host);
  await new Promise((resolve) => tcp.once('connect', resolve));
  tcp.write(packet(new Bytes().int16(1234).int16(5679).build()));
  const answer = await new Promise<Buffer>((resolve) => tcp.once('data', resolve));
  expect(String.fromCharCode(answer[0]!)).toBe('S');
  const tls = tlsConnect({ socket: tcp, ca: db.caPem, servername: 'localhost' });
  await new Promise((resolve) => tls.once('secureConnect', resolve));
  tls.write(startupMessage({ user: db.user, database: db.database }));
  const reply = await new Promise<Buffer>((resolve) => tls.once('data', resolve));
  tls.destroy();
  return mechanisms(readMessages(new Uint8Array(reply))[0]!.body);
}

describe('the SASL mechanisms a client is offered through the bridge', () => {
  it('are PostgreSQL’s over TLS without SCRAM-SHA-256-PLUS', async () => {
    expect((await offeredOverTls()).sort()).toEqual(['SCRAM-SHA-256', 'SCRAM-SHA-256-PLUS']);
    const db = postgres();
    const client = await RawClient.open(suite.bridge.url);
    client.send(startupMessage({ user: db.user, database: db.database }));
    const offer = await client.next();
    expect(offer.type).toBe('R');
    expect(mechanisms(offer.body)).toEqual(['SCRAM-SHA-256']);
    client.close();
  });

  it('let pg and postgres.js log in, over the TLS leg', async () => {
    const client = bridgeClient(suite.bridge.url);
    await client.connect();
    const { rows } = await client.query('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
    expect(rows).toEqual([{ ssl: true }]);
    await client.end();

    const sql = bridgePostgresJs(suite.bridge.url);
    const [row] = await sql`SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()`;
    expect(row).toEqual({ ssl: true });
    await sql.end();
  });

  it('cannot give pg channel binding: PostgreSQL refuses its "y" flag once it offered -PLUS', async () => {
    const client = bridgeClient(suite.bridge.url, { enableChannelBinding: true } as never);
    const error = await client.connect().then(
      () => null,
      (e: { code?: string }) => e,
    );
    expect(error?.code).toBe('28000');
  });
});
