type Listener = () => void;

/** Just enough of an event target for the client's feature detection. */
class FakeEventTarget {
  private readonly listeners = new Map<string, Set<Listener>>();

  addEventListener(type: string, listener: Listener): void {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type)!.add(listener);
  }

  removeEventListener(type: string, listener: Listener): void {
    this.listeners.get(type)?.delete(listener);
  }

  dispatch(type: string): void {
    for (const listener of [...(this.listeners.get(type) ?? [])]) listener();
  }

  get listenerCount(): number {
    return [...this.listeners.values()].reduce((n, set) => n + set.size, 0);
  }
}

/**
 * A minimal browser page on globalThis: `document` (visibilityState + visibilitychange) and the
 * window's `focus` / `online` events. `remove()` restores the Node global.
 */
export class FakePage {
  readonly document = Object.assign(new FakeEventTarget(), {
    visibilityState: 'visible' as 'visible' | 'hidden',
  });
  readonly window = new FakeEventTarget();

  static install(visibility: 'visible' | 'hidden'): FakePage {
    const page = new FakePage();
    page.document.visibilityState = visibility;
    const scope = globalThis as Record<string, unknown>;
    scope.document = page.document;
    scope.addEventListener = page.window.addEventListener.bind(page.window);
    scope.removeEventListener = page.window.removeEventListener.bind(page.window);
    return page;
  }

  setVisibility(visibility: 'visible' | 'hidden'): void {
    this.document.visibilityState = visibility;
    this.document.dispatch('visibilitychange');
  }

  /** Listeners the client left on the page. */
  get listenerCount(): number {
    return this.document.listenerCount + this.window.listenerCount;
  }

  remove(): void {
    const scope = globalThis as Record<string, unknown>;
    delete scope.document;
    delete scope.addEventListener;
    delete scope.removeEventListener;
  }
}
