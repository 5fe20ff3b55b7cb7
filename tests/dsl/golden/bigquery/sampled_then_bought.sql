SELECT
  p.fan_id AS profile_key
FROM crm.fans AS p
WHERE
  p.fan_id IS NOT NULL
  AND p.fan_id IN (
    SELECT DISTINCT
      a1.fan_id
    FROM (
      SELECT
        s3.fan_id,
        s3.sampled_at,
        s3.artist
      FROM clip_samples AS s3
      WHERE
        s3.fan_id IS NOT NULL
        AND s3.sampled_at <= CAST('2026-06-30 12:00:00.000000' AS DATETIME)
        AND s3.sampled_at > CAST('2026-01-01 12:00:00.000000' AS DATETIME)
    ) AS a1
    JOIN (
      SELECT
        s4.fan_id,
        s4.purchased_at,
        s4.category,
        s4.amount
      FROM purchases AS s4
      WHERE
        s4.fan_id IS NOT NULL
        AND s4.purchased_at <= CAST('2026-06-30 12:00:00.000000' AS DATETIME)
        AND s4.purchased_at > CAST('2026-01-01 12:00:00.000000' AS DATETIME)
    ) AS b2
      ON a1.fan_id = b2.fan_id
    WHERE
      b2.purchased_at >= a1.sampled_at
      AND b2.purchased_at <= a1.sampled_at + INTERVAL '7' DAY
      AND (
        b2.category IS NOT NULL AND b2.category IN ('album', 'single', 'vinyl')
      )
  )
