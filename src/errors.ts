import { customerDeclineReason } from './payments/decline-reasons.js';

/**
 * An answer, not a crash (DESIGN rule 9): every failure a caller can cause or meet has a
 * stable code and an HTTP status, and is rendered as application/problem+json.
 */
export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    detail: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(detail);
    this.name = 'AppError';
  }
}

export const errors = {
  validation: (detail: string, issues: unknown[] = []) => new AppError(400, 'VALIDATION_FAILED', detail, { issues }),
  unauthenticated: () => new AppError(401, 'UNAUTHENTICATED', 'A valid bearer token is required.'),
  badCredentials: () => new AppError(401, 'INVALID_CREDENTIALS', 'E-mail or password is wrong.'),
  forbidden: () => new AppError(403, 'FORBIDDEN', 'This route needs an operator API key.'),
  emailTaken: (closed = false) =>
    new AppError(
      409,
      'EMAIL_TAKEN',
      closed ? 'This e-mail belongs to an account that was closed, and a closed account is not reopened: sign up with another e-mail.' : 'An account with this e-mail already exists.',
      closed ? { closed } : {},
    ),
  nameTaken: (what: string) => new AppError(409, 'NAME_TAKEN', `A ${what} with this name already exists.`),
  serviceNotFound: () => new AppError(404, 'SERVICE_NOT_FOUND', 'No service has this id.'),
  serverNotFound: () => new AppError(404, 'SERVER_NOT_FOUND', 'No server has this id.'),
  sessionNotFound: () => new AppError(404, 'SESSION_NOT_FOUND', 'No session of yours has this id.'),
  routeNotFound: (url: string) => new AppError(404, 'NOT_FOUND', `No route for ${url}.`),
  cardInvalid: (field: string, detail: string) => new AppError(400, 'CARD_INVALID', detail, { field }),
  /** Said to the customer: a lost or stolen card is told as a generic decline (customerDeclineReason). */
  cardDeclined: (reason: string) => {
    if (reason === 'balance_too_low') {
      return new AppError(402, 'BALANCE_TOO_LOW', 'The prepaid balance does not cover the hold: top up, or ask for a lower limit. Nothing was held or charged.', {
        reason,
      });
    }
    const told = customerDeclineReason(reason);
    return new AppError(402, 'CARD_DECLINED', `The card company declined the authorization (${told}).`, { reason: told });
  },
  cardNetworkUnavailable: () =>
    new AppError(503, 'CARD_NETWORK_UNAVAILABLE', 'The card company could not be reached; nothing was charged.', {
      retryAfterSeconds: 5,
    }),
  /** Not "nothing was charged": the capture may have been made, its answer lost; the top-up is driven again and charged once. */
  topUpPending: (topUpId: string) =>
    new AppError(
      503,
      'CARD_NETWORK_UNAVAILABLE',
      'The card company did not answer: the top-up is pending, and is charged once when it does (ask again with the same Idempotency-Key to see it; without one, a new request is a new top-up).',
      { retryAfterSeconds: 5, topUpId },
    ),
  outstandingLimitReached: (available: string, detail: string) =>
    new AppError(402, 'OUTSTANDING_LIMIT_REACHED', detail, { available }),
  limitBelowMinimum: (minimumCharge: string) =>
    new AppError(
      422,
      'LIMIT_BELOW_MINIMUM_CHARGE',
      `The service charges at least ${minimumCharge} a session: a charge limit below that buys no time. Ask for at least ${minimumCharge}.`,
      { minimumCharge },
    ),
  currencyMismatch: () => new AppError(409, 'CURRENCY_MISMATCH', 'The service is priced in another currency.'),
  extensionTooLate: (state: string, endReason: string) =>
    new AppError(
      409,
      'EXTENSION_TOO_LATE',
      `The session reached its limit (${endReason}) while the card company was asked to raise it: it ended at its old limit, and nothing more is held or charged.`,
      { state, endReason },
    ),
  sessionNotActive: (state: string) =>
    new AppError(409, 'SESSION_NOT_ACTIVE', `The session is ${state}; only an active session can do that.`, { state }),
  serviceUnreachable: (detail: string | null, outcome = 'no session was opened and nothing was held') =>
    new AppError(503, 'SERVICE_UNREACHABLE', `The service does not answer just now${detail ? ` (${detail})` : ''}: ${outcome}.`, {
      retryAfterSeconds: 5,
    }),
  serviceAtCapacity: (retryAfterSeconds: number) =>
    new AppError(409, 'SERVICE_AT_CAPACITY', 'The service has as many users as it can serve; try again shortly.', {
      retryAfterSeconds,
    }),
  serverAtCapacity: (retryAfterSeconds: number) =>
    new AppError(409, 'SERVER_AT_CAPACITY', 'The server running this service is full; try again shortly.', {
      retryAfterSeconds,
    }),
  timeLimitBinds: () =>
    new AppError(409, 'TIME_LIMIT_BINDS', 'The session’s time limit, not its charge limit, ends it; a higher charge limit changes nothing.'),
  actionNotAllowed: (action: string, state: string) =>
    new AppError(409, 'ACTION_NOT_ALLOWED', `The session (${state}) cannot take "${action}" now.`, { state }),
  shuttingDown: () => new AppError(503, 'SHUTTING_DOWN', 'tollgate is shutting down; try again shortly.'),
  /** Several nodes: the session's server is changing hands (or its owner cannot be reached). */
  serverMoving: () =>
    new AppError(503, 'SERVER_MOVING', 'The server running this service is moving between tollgate nodes; try again shortly.', {
      retryAfterSeconds: 1,
    }),
  /** Several nodes: a request was sent to the session's owner, whose answer never came back: it may have been carried out. */
  ownerUnanswered: () =>
    new AppError(
      502,
      'OWNER_UNANSWERED',
      'The tollgate node running this session took the request but its answer was lost; it may have been carried out: look at the session before asking again.',
    ),
  extensionInProgress: () =>
    new AppError(409, 'EXTENSION_IN_PROGRESS', 'Another extension of this session is being decided; ask again once it is.'),
  notRecorded: (detail: string) =>
    new AppError(503, 'NOT_RECORDED', `tollgate could not record this yet (${detail}); nothing was sent to the card company for it.`, {
      retryAfterSeconds: 5,
    }),
  idempotencyKeyReused: () =>
    new AppError(422, 'IDEMPOTENCY_KEY_REUSED', 'This Idempotency-Key was used with another request; use a new key for a new request.'),
  idempotencyKeyInUse: () =>
    new AppError(409, 'IDEMPOTENCY_KEY_IN_USE', 'A request with this Idempotency-Key is still being answered; retry once it is.', {
      retryAfterSeconds: 1,
    }),
  useLimitReached: (units: number) =>
    new AppError(402, 'USE_LIMIT_REACHED', `${units} more uses would pass the session's limit (or the session is not running); nothing was reserved.`),
  serviceCredentialRequired: () =>
    new AppError(401, 'SERVICE_CREDENTIAL_REQUIRED', "The metering API needs the service's credential: Authorization: Bearer tgm_…"),
  idempotencyKeyRequired: () =>
    new AppError(400, 'IDEMPOTENCY_KEY_REQUIRED', 'A commit without a reservation needs an Idempotency-Key header, so that a retry cannot count the uses twice.'),
  notPricedPerUse: () => new AppError(409, 'NOT_PRICED_PER_USE', 'This service has no price per use.'),
  meteredAtTheEdge: () =>
    new AppError(409, 'METERED_AT_THE_EDGE', 'This service is priced per request: tollgate counts its requests at the edge; the metering API is for services priced per unit.'),
  reservationNotFound: () => new AppError(404, 'RESERVATION_NOT_FOUND', 'This session made no such reservation.'),
  quoteNotFound: () => new AppError(404, 'QUOTE_NOT_FOUND', 'No quote of yours has this id.'),
  quoteUsed: () => new AppError(409, 'QUOTE_USED', 'This quote has already opened a session; ask for a new one.'),
  quoteExpired: () => new AppError(409, 'QUOTE_EXPIRED', 'This quote has expired; ask for a new one.'),
  quoteNotStarted: (startAt: string) =>
    new AppError(409, 'QUOTE_NOT_STARTED', `This quote prices a session from ${startAt}; open it then, or ask for one from now.`, { startAt }),
  openCancelled: () =>
    new AppError(503, 'OPEN_CANCELLED', 'An operator gave up on the card company for this open; nothing was charged. Try again.'),
  databaseUnavailable: () => new AppError(503, 'DATABASE_UNAVAILABLE', 'The database does not answer.'),
  restoring: () => new AppError(503, 'RESTORING', 'Sessions are still being restored.'),
  rateLimited: (retryAfterSeconds: number) =>
    new AppError(429, 'RATE_LIMITED', `Too many requests; try again in ${retryAfterSeconds} s.`, { retryAfterSeconds }),
  loginLocked: (retryAfterSeconds: number) =>
    new AppError(429, 'LOGIN_LOCKED', `Too many wrong passwords for this e-mail; try again in ${retryAfterSeconds} s.`, {
      retryAfterSeconds,
    }),
  busy: () => new AppError(503, 'BUSY', 'tollgate is checking too many credentials at once; try again shortly.', { retryAfterSeconds: 1 }),
  tokenNotFound: () => new AppError(404, 'TOKEN_NOT_FOUND', 'You have no live token with this id.'),
  sessionQuotaReached: (limit: number) =>
    new AppError(409, 'SESSION_QUOTA_REACHED', `You have ${limit} unsettled sessions, as many as an account may have at once; end one first.`, {
      limit,
    }),
  queueQuotaReached: (limit: number) =>
    new AppError(409, 'QUEUE_QUOTA_REACHED', `You already have ${limit} opens waiting for a seat, as many as an account may have.`, {
      limit,
    }),
  queueFull: (gate: 'service' | 'server', retryAfterSeconds: number) =>
    new AppError(409, 'QUEUE_FULL', `The ${gate}'s queue for a seat is full; try again later.`, { gate, retryAfterSeconds }),
  operatorForbidden: (role: string) =>
    new AppError(403, 'FORBIDDEN', `Operators with the role "${role}" may not do this.`, { role }),
  bootstrapOnly: () =>
    new AppError(403, 'FORBIDDEN', 'The bootstrap token only creates the first admin operator; use an operator API key.'),
  operatorNotFound: () => new AppError(404, 'OPERATOR_NOT_FOUND', 'No operator has this id.'),
  accessTokenInvalid: () =>
    new AppError(401, 'ACCESS_TOKEN_INVALID', 'A session access token is required: Authorization: Bearer <access.token>, or ?access_token= once.'),
  accessForbidden: (reason: 'other_service' | 'other_customer' | 'other_session') =>
    new AppError(403, 'ACCESS_FORBIDDEN', {
      other_service: 'This access token is for a session of another service.',
      other_customer: 'This access token is for a session of another customer.',
      other_session: 'This access token is for another session; use the one its view shows.',
    }[reason], { reason }),
  sessionEnded: (state: string, endReason: string | null, endedAt: string | null) =>
    new AppError(402, 'SESSION_ENDED', `The session is no longer active (${endReason ?? state}); open or extend a session to go on.`, {
      state,
      endReason,
      endedAt,
    }),
  noUpstream: () => new AppError(503, 'NO_UPSTREAM', 'This service has no upstream yet; an operator sets its upstreamUrl.'),
  noUpstreamToSign: () =>
    new AppError(409, 'NO_UPSTREAM', 'This service has no upstream: a signing secret signs the calls to one. Set its upstreamUrl first (that answers its first secret).'),
  badUrl: () => new AppError(400, 'BAD_URL', 'The path is not valid percent-encoded text.'),
  upstreamUnavailable: (detail: string) => new AppError(502, 'UPSTREAM_UNAVAILABLE', `The service did not answer (${detail}).`),
  lastAdmin: () => new AppError(409, 'LAST_ADMIN', 'This would leave no enabled admin operator.'),
  accountNotFound: () => new AppError(404, 'ACCOUNT_NOT_FOUND', 'No account has this id.'),
  /** The account's state refuses this (suspended: no new sessions; closed: nothing). */
  closedDuringTopUp: () =>
    new AppError(409, 'ACCOUNT_NOT_ACTIVE', 'The account closed while this top-up was being charged; the charge goes back to the card.', { state: 'closed' }),
  accountNotActive: (state: string) =>
    new AppError(409, 'ACCOUNT_NOT_ACTIVE', `The account is ${state}; it cannot do that now.`, { state }),
  accountNotSuspended: (state: string) =>
    new AppError(409, 'ACCOUNT_NOT_SUSPENDED', `The account is ${state}, not suspended: there is nothing to resume.`, { state }),
  statementUnpaid: (due: string, charging: boolean) =>
    new AppError(
      409,
      'STATEMENT_UNPAID',
      charging
        ? `A statement's charge of ${due} is still on its way to the card company: close once it is paid.`
        : `The card company declined the charge of ${due} a statement owes: give a new card (PUT /v1/account/card), which is charged for it, before closing.`,
      { due },
    ),
  accountHasUnsettledSessions: (unsettled: number) =>
    new AppError(409, 'ACCOUNT_HAS_UNSETTLED_SESSIONS', `The account has ${unsettled} unsettled sessions; it closes once every one has settled.`, {
      unsettled,
    }),
  limitBelowReserved: (reserved: string) =>
    new AppError(409, 'LIMIT_BELOW_RESERVED', `The open sessions hold ${reserved}; the outstanding limit cannot go below that now.`, { reserved }),
  wrongPassword: () => new AppError(403, 'WRONG_PASSWORD', 'The current password is wrong; nothing was changed.'),
  webhookNotFound: () => new AppError(404, 'WEBHOOK_NOT_FOUND', 'No webhook endpoint has this id.'),
  webhookAlreadySent: () =>
    new AppError(409, 'WEBHOOK_ALREADY_SENT', 'This form already registered another endpoint: nothing more was registered. To register one more, reload the page and send the form again.'),
  quoteOverMaxAmount: (total: string, hold: string, most: string) =>
    new AppError(
      400,
      'QUOTE_OVER_MAX_AMOUNT',
      `This use would cost ${total}, and its session would hold ${hold}: more than one session may hold (${most}, MAX_AMOUNT). Ask for fewer minutes or a maximum charge.`,
      { total, hold, most },
    ),
  priceChanged: (pricePerMinute: string) =>
    new AppError(409, 'PRICE_CHANGED', `The service's price changed while this open waited for a seat: nothing was held. Open again to use it at its new price (${pricePerMinute} a minute where no rule applies).`, {
      pricePerMinute,
    }),
  openFormAlreadySent: () =>
    new AppError(409, 'OPEN_FORM_ALREADY_SENT', 'This form was sent before with other values: nothing was opened by this sending (see your sessions for what the first one opened). The form below is a new one: send it to open another session.'),
  openFormOutOfDate: () => new AppError(400, 'OPEN_FORM_OUT_OF_DATE', 'This form was out of date: nothing was opened. Check it and send it again.'),
  openFormStillSending: () =>
    new AppError(409, 'OPEN_FORM_STILL_SENDING', 'This form is still opening its session: send it again in a moment to see that session, or see your sessions.', { retryAfterSeconds: 1 }),
  topUpAlreadySent: (amount: string) =>
    new AppError(409, 'TOP_UP_ALREADY_SENT', `This top-up was already sent, for another amount or account: nothing more was charged. To add ${amount}, ask again from a fresh page (or with a new Idempotency-Key).`),
  notPrepaid: (postpaid: boolean) =>
    new AppError(
      409,
      'NOT_PREPAID',
      postpaid
        ? 'Only a prepaid account has a balance to top up; this one is postpaid (what it uses is charged with its statement), which only operators change.'
        : 'Only a prepaid account has a balance to top up; set paymentMode to "prepaid" first.',
    ),
  paymentModeNotYours: () => new AppError(403, 'PAYMENT_MODE_SET_BY_OPERATORS', 'Postpaid accounts are set, and changed, by operators.'),
  statementNotFound: () => new AppError(404, 'STATEMENT_NOT_FOUND', 'No statement of yours has this id.'),
};
