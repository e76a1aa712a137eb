/**
 * Errors of fault-injection campaigns: one class, a closed set of codes, each documented in
 * campaigns/README.md ("Errors").
 */
import { DmaboxError } from '../common/errors.js';

export type CampaignCode =
  'ERR_CAMPAIGN_SPEC' | 'ERR_CAMPAIGN_TARGET' | 'ERR_CAMPAIGN_ARG' | 'ERR_CAMPAIGN_OUT' | 'ERR_CAMPAIGN_REPLAY' | 'ERR_CAMPAIGN_WORKER' | 'ERR_CAMPAIGN_NBD';

export class CampaignError extends DmaboxError<CampaignCode> {}
