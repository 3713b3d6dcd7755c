import type { ServerLoad } from './occupancy.js';

export interface CustomerEstimates {
  accountId: string;
  estimatedStorageGb: number;
  estimatedProcessingHours: number;
}

/**
 * Sums the estimated needs of the distinct customers connected to each server: a customer
 * with three sessions on a server counts once.
 */
export class CustomerLoad {
  private readonly sessionsByServer = new Map<string, Map<string, { count: number; customer: CustomerEstimates }>>();
  private readonly loads = new Map<string, ServerLoad>();

  connect(serverId: string, customer: CustomerEstimates): ServerLoad {
    const sessions = this.sessionsOf(serverId);
    const entry = sessions.get(customer.accountId);
    if (entry) {
      entry.count++;
      return this.loadOf(serverId);
    }
    sessions.set(customer.accountId, { count: 1, customer });
    return this.adjust(serverId, customer, 1);
  }

  disconnect(serverId: string, accountId: string): ServerLoad {
    const sessions = this.sessionsOf(serverId);
    const entry = sessions.get(accountId);
    if (!entry) return this.loadOf(serverId);
    if (--entry.count > 0) return this.loadOf(serverId);
    sessions.delete(accountId);
    return this.adjust(serverId, entry.customer, -1);
  }

  private adjust(serverId: string, customer: CustomerEstimates, sign: 1 | -1): ServerLoad {
    const load = this.loadOf(serverId);
    const next = {
      customers: load.customers + sign,
      estimatedStorageGb: load.estimatedStorageGb + sign * customer.estimatedStorageGb,
      estimatedProcessingHours: load.estimatedProcessingHours + sign * customer.estimatedProcessingHours,
    };
    if (next.customers === 0) Object.assign(next, { estimatedStorageGb: 0, estimatedProcessingHours: 0 });
    this.loads.set(serverId, next);
    return next;
  }

  private loadOf(serverId: string): ServerLoad {
    return this.loads.get(serverId) ?? { customers: 0, estimatedStorageGb: 0, estimatedProcessingHours: 0 };
  }

  private sessionsOf(serverId: string) {
    let sessions = this.sessionsByServer.get(serverId);
    if (!sessions) this.sessionsByServer.set(serverId, (sessions = new Map()));
    return sessions;
  }
}
