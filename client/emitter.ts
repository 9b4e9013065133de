type Listener = (...args: any[]) => void;

/**
 * The part of Node's EventEmitter that drivers call on sockets (on, once, off, emit, …), so the
 * shim needs neither `node:events` nor a polyfill in browsers. Like Node's, emitting 'error' with
 * no listener throws.
 */
export class Emitter {
  private readonly handlers = new Map<string | symbol, Listener[]>();

  on(event: string | symbol, listener: Listener): this {
    this.handlers.set(event, [...(this.handlers.get(event) ?? []), listener]);
    return this;
  }

  addListener(event: string | symbol, listener: Listener): this {
    return this.on(event, listener);
  }

  prependListener(event: string | symbol, listener: Listener): this {
    this.handlers.set(event, [listener, ...(this.handlers.get(event) ?? [])]);
    return this;
  }

  once(event: string | symbol, listener: Listener): this {
    const wrapper: Listener & { listener?: Listener } = (...args) => {
      this.off(event, wrapper);
      listener.apply(this, args);
    };
    wrapper.listener = listener;
    return this.on(event, wrapper);
  }

  off(event: string | symbol, listener: Listener): this {
    const list = this.handlers.get(event);
    if (!list) return this;
    const index = list.findIndex((l) => l === listener || (l as { listener?: Listener }).listener === listener);
    if (index !== -1)
      this.handlers.set(
        event,
        list.filter((_, i) => i !== index),
      );
    return this;
  }

  removeListener(event: string | symbol, listener: Listener): this {
    return this.off(event, listener);
  }

  removeAllListeners(event?: string | symbol): this {
    if (event === undefined) this.handlers.clear();
    else this.handlers.delete(event);
    return this;
  }

  /** Listeners in call order; `once` wrappers are unwrapped, as Node does. */
  listeners(event: string | symbol): Listener[] {
    return (this.handlers.get(event) ?? []).map((l) => (l as { listener?: Listener }).listener ?? l);
  }

  listenerCount(event: string | symbol): number {
    return this.handlers.get(event)?.length ?? 0;
  }

  emit(event: string | symbol, ...args: unknown[]): boolean {
    const list = this.handlers.get(event);
    if (!list || list.length === 0) {
      if (event === 'error') throw args[0] instanceof Error ? args[0] : new Error(String(args[0]));
      return false;
    }
    for (const listener of list) listener.apply(this, args);
    return true;
  }

  // Node's streams call these; a socket has no use for the limit.
  setMaxListeners(): this {
    return this;
  }
}
