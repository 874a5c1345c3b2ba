// Long-lived connections: graphql-ws sockets and streamed HTTP responses (SSE, multipart). Each one
// holds server memory for as long as it stays open (a socket that was sent a compressed message
// keeps its deflate context), and graphql-ws sockets stay open with no operation running, so the
// subscription caps (stream-caps.ts) do not bound them. One client address may hold at most
// `perAddress` of them, the whole server at most `total`; further ones are refused with
// TOO_MANY_CONNECTIONS before anything is allocated for them.

export interface ConnectionRefusal {
  /** 429 when the address is at its cap, 503 when the server is. */
  status: 429 | 503;
  code: 'TOO_MANY_CONNECTIONS';
  message: string;
}

export class ConnectionCounts {
  private readonly byAddress = new Map<string, number>();
  private open = 0;

  constructor(
    readonly perAddress = 32,
    readonly total = 1024,
  ) {}

  /** Why one more connection from `address` is refused now, or null when it may open. */
  refusal(address: string): ConnectionRefusal | null {
    if (this.open >= this.total) {
      return { status: 503, code: 'TOO_MANY_CONNECTIONS', message: `The server holds its maximum of ${this.total} open WebSocket and SSE connections; retry later` };
    }
    if (this.held(address) >= this.perAddress) {
      return {
        status: 429,
        code: 'TOO_MANY_CONNECTIONS',
        message: `This client already holds ${this.perAddress} open WebSocket and SSE connections; close one first`,
      };
    }
    return null;
  }

  held(address: string): number {
    return this.byAddress.get(address) ?? 0;
  }

  /** Open connections in all. */
  get size(): number {
    return this.open;
  }

  /** Counts one connection of `address` until `onClose` fires (once). */
  hold(address: string, onClose: (release: () => void) => void): void {
    this.open++;
    this.byAddress.set(address, this.held(address) + 1);
    let released = false;
    onClose(() => {
      if (released) return;
      released = true;
      this.open--;
      const left = this.held(address) - 1;
      if (left > 0) this.byAddress.set(address, left);
      else this.byAddress.delete(address);
    });
  }
}

/** The coded JSON body every refusal of this server carries (GraphQL's `errors` shape). */
export function errorBody(message: string, code: string): string {
  return JSON.stringify({ errors: [{ message, extensions: { code } }] });
}
