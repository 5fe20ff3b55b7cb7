SELECT
  p.fan_id AS profile_key
FROM crm.fans AS p
WHERE
  p.fan_id IS NOT NULL
  AND (
    p.fan_id IN (
      SELECT DISTINCT
        e1.fan_id
      FROM purchases AS e1
      WHERE
        e1.fan_id IS NOT NULL
        AND e1.purchased_at <= CAST('2026-06-30 12:00:00.000000' AS TIMESTAMP)
        AND e1.purchased_at >= CAST('2026-01-01 00:00:00.000000' AS TIMESTAMP)
    )
    OR p.fan_id IN (
      SELECT DISTINCT
        e2.fan_id
      FROM purchases AS e2
      WHERE
        e2.fan_id IS NOT NULL
        AND e2.purchased_at <= CAST('2026-06-30 12:00:00.000000' AS TIMESTAMP)
        AND e2.purchased_at < CAST('2016-06-23 08:00:00.000000' AS TIMESTAMP)
    )
    OR p.fan_id IN (
      SELECT DISTINCT
        e3.fan_id
      FROM checkins AS e3
      WHERE
        e3.fan_id IS NOT NULL
        AND e3.checked_in_at <= CAST('2026-06-30 12:00:00.000000+00:00' AS TIMESTAMP)
        AND e3.checked_in_at >= CAST('2026-01-01 00:00:00.000000+00:00' AS TIMESTAMP)
        AND e3.checked_in_at < CAST('2026-02-01 11:30:00.000000+00:00' AS TIMESTAMP)
    )
  )
