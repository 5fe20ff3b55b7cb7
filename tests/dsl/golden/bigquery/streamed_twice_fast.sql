SELECT
  p.fan_id AS profile_key
FROM crm.fans AS p
WHERE
  p.fan_id IS NOT NULL
  AND (
    (
      p.fan_id IN (
        SELECT DISTINCT
          a1.fan_id
        FROM streams AS a1
        JOIN streams AS b2
          ON a1.fan_id = b2.fan_id
        WHERE
          a1.fan_id IS NOT NULL
          AND a1.played_at <= CAST('2026-06-30 12:00:00.000000' AS DATETIME)
          AND b2.played_at <= CAST('2026-06-30 12:00:00.000000' AS DATETIME)
          AND b2.played_at > a1.played_at
          AND b2.played_at <= a1.played_at + INTERVAL '30' MINUTE
          AND (
            a1.genre IS NOT NULL AND a1.genre = 'house'
          )
      )
      OR p.fan_id IN (
        SELECT
          g3.fan_id
        FROM streams AS g3
        WHERE
          g3.fan_id IS NOT NULL
          AND g3.played_at <= CAST('2026-06-30 12:00:00.000000' AS DATETIME)
        GROUP BY
          g3.fan_id,
          g3.played_at
        HAVING
          COUNT(*) >= 2
          AND SUM(CASE WHEN (
            g3.genre IS NOT NULL AND g3.genre = 'house'
          ) THEN 1 ELSE 0 END) >= 1
      )
    )
    AND (
      (
        p.city IS NOT NULL AND p.city = 'London'
      )
      AND (
        p.country IS NOT NULL AND p.country = 'GB'
      )
      AND p.fan_id IN (
        SELECT
          e4.fan_id
        FROM streams AS e4
        WHERE
          e4.fan_id IS NOT NULL
          AND e4.played_at <= CAST('2026-06-30 12:00:00.000000' AS DATETIME)
          AND e4.played_at > CAST('2026-05-31 12:00:00.000000' AS DATETIME)
          AND (
            e4.genre IS NOT NULL AND e4.genre = 'dubstep'
          )
        GROUP BY
          e4.fan_id
        HAVING
          COUNT(*) >= 5
      )
      AND p.fan_id IN (
        SELECT
          e5.fan_id
        FROM clip_samples AS e5
        WHERE
          e5.fan_id IS NOT NULL
          AND e5.sampled_at <= CAST('2026-06-30 12:00:00.000000' AS DATETIME)
          AND e5.sampled_at > CAST('2026-05-31 12:00:00.000000' AS DATETIME)
        GROUP BY
          e5.fan_id
        HAVING
          COUNT(*) >= 3
      )
      AND NOT (
        p.fan_id IN (
          SELECT DISTINCT
            e6.fan_id
          FROM purchases AS e6
          WHERE
            e6.fan_id IS NOT NULL
            AND e6.purchased_at <= CAST('2026-06-30 12:00:00.000000' AS DATETIME)
            AND e6.purchased_at > CAST('2026-04-01 12:00:00.000000' AS DATETIME)
            AND (
              e6.category IS NOT NULL AND e6.category = 'ringtone'
            )
        )
      )
    )
  )
