-- ci-guard ledger, schema version 15: where a call ran, as priced: Anthropic's usage.inference_geo
-- ("us": 1.1x on Opus 4.6 and later) or the OpenAI data-residency region of the upstream ("eu":
-- 1.1x on gpt-5.4 and later). With service_tier and the tokens, a row can be re-priced by hand
-- (ci-guard cost --inference-geo). NULL: global / not reported (and every row before this version).

ALTER TABLE calls ADD COLUMN inference_geo TEXT;
