import { Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { Observable, Subject } from 'rxjs';
import type { ChangeNotice } from './change-notice.interface';

/** Carries notices to everything waiting in this process; a relay may link instances. */
export interface BusRelay {
  publish(notice: ChangeNotice): void;
}

@Injectable()
export class ChangeBus {
  /** Identifies this process on the relay so it ignores its own echoes. */
  readonly instanceId = randomUUID();
  private readonly subject = new Subject<ChangeNotice>();
  readonly notices$: Observable<ChangeNotice> = this.subject.asObservable();
  private relay: BusRelay | null = null;
  private relayUp = false;
  private linkChanges = 0;

  /** Called once the relay's subscription is live: notices of other instances reach this one. */
  attachRelay(relay: BusRelay): void {
    this.relay = relay;
    this.setLinked(true);
  }

  /**
   * True while every notice another instance publishes reaches this process: a relay is attached
   * and its subscription is live. A cache of what other instances write is only valid meanwhile.
   */
  get linked(): boolean {
    return this.relay !== null && this.relayUp;
  }

  /** Counts the link's ups and downs: something learned before a change of link is suspect. */
  get linkEpoch(): number {
    return this.linkChanges;
  }

  /** The relay's subscription was lost (false) or is live again (true), before its wake-all. */
  setLinked(up: boolean): void {
    if (up === this.relayUp) return;
    this.relayUp = up;
    this.linkChanges++;
  }

  /** A notice produced here: delivered locally at once and sent to the other instances. */
  publish(notice: ChangeNotice): void {
    this.subject.next(notice);
    this.relay?.publish(notice);
  }

  /** A notice that arrived from another instance. */
  deliver(notice: ChangeNotice): void {
    this.subject.next(notice);
  }

  /** Live local subscriptions; tests and metrics use it to prove nothing leaks. */
  get subscriberCount(): number {
    // `observers` is deprecated for manipulation, still the way to count.
    return this.subject.observers.length;
  }
}
