/* deliver's offsets.c: the commit point is the lowest unfinished offset, whatever order the
 * records finish in; the ring grows up to its capacity and refuses past it. */
#include "offsets.h"
#include "sl_test.h"

#include <stdlib.h>

SL_TEST(commit_point_is_the_lowest_unfinished)
{
    dlv_offsets_t *o = dlv_offsets_new(16);
    SL_REQUIRE(o);
    SL_CHECK_INT(dlv_offsets_commit_point(o), -1);
    for (int64_t off = 100; off <= 105; off++)
        SL_CHECK_INT(dlv_offsets_add(o, off), 0);
    SL_CHECK_INT(dlv_offsets_commit_point(o), 100);
    SL_CHECK_INT(dlv_offsets_finish(o, 102), 0);
    SL_CHECK_INT(dlv_offsets_finish(o, 103), 0);
    SL_CHECK_INT(dlv_offsets_commit_point(o), 100);
    SL_CHECK_INT(dlv_offsets_finish(o, 100), 0);
    SL_CHECK_INT(dlv_offsets_commit_point(o), 101);
    SL_CHECK_INT(dlv_offsets_held(o), 5);
    SL_CHECK_INT(dlv_offsets_finish(o, 101), 0);
    SL_CHECK_INT(dlv_offsets_commit_point(o), 104); /* 102 and 103 were done */
    SL_CHECK_INT(dlv_offsets_held(o), 2);
    SL_CHECK_INT(dlv_offsets_finish(o, 105), 0);
    SL_CHECK_INT(dlv_offsets_finish(o, 104), 0);
    SL_CHECK_INT(dlv_offsets_commit_point(o), 106); /* all done: one past the last */
    SL_CHECK_INT(dlv_offsets_held(o), 0);
    dlv_offsets_destroy(o);
}

SL_TEST(gaps_duplicates_and_unknown_offsets)
{
    dlv_offsets_t *o = dlv_offsets_new(8);
    SL_REQUIRE(o);
    SL_CHECK_INT(dlv_offsets_add(o, 10), 0);
    SL_CHECK_INT(dlv_offsets_add(o, 13), 0); /* a transaction marker at 11-12 */
    SL_CHECK_INT(dlv_offsets_add(o, 13), -1);
    SL_CHECK_INT(dlv_offsets_add(o, 12), -1);
    SL_CHECK_INT(dlv_offsets_add(o, -1), -1);
    SL_CHECK_INT(dlv_offsets_finish(o, 11), -1);
    SL_CHECK_INT(dlv_offsets_finish(o, 13), 0);
    SL_CHECK_INT(dlv_offsets_finish(o, 13), -1); /* twice */
    SL_CHECK_INT(dlv_offsets_commit_point(o), 10);
    SL_CHECK_INT(dlv_offsets_finish(o, 10), 0);
    SL_CHECK_INT(dlv_offsets_commit_point(o), 14);
    dlv_offsets_destroy(o);
}

SL_TEST(capacity_bounds_what_is_held_behind_a_stuck_offset)
{
    dlv_offsets_t *o = dlv_offsets_new(200); /* more than the initial ring: it grows */
    SL_REQUIRE(o);
    for (int64_t off = 0; off < 200; off++)
        SL_CHECK_INT(dlv_offsets_add(o, off), 0);
    SL_CHECK(dlv_offsets_full(o));
    SL_CHECK_INT(dlv_offsets_add(o, 200), -1);
    for (int64_t off = 1; off < 200; off++) /* everything but the first finishes */
        SL_CHECK_INT(dlv_offsets_finish(o, off), 0);
    SL_CHECK(dlv_offsets_full(o)); /* still held: 0 is stuck */
    SL_CHECK_INT(dlv_offsets_commit_point(o), 0);
    SL_CHECK_INT(dlv_offsets_finish(o, 0), 0);
    SL_CHECK(!dlv_offsets_full(o));
    SL_CHECK_INT(dlv_offsets_commit_point(o), 200);
    dlv_offsets_destroy(o);
}

SL_TEST(random_finish_order_matches_a_model)
{
    enum { N = 5000, CAP = 700 };
    dlv_offsets_t *o = dlv_offsets_new(CAP);
    SL_REQUIRE(o);
    static bool done[N];
    int64_t next = 0, lowest = 0;
    unsigned seed = 12345;
    while (lowest < N) {
        if (next < N && !dlv_offsets_full(o) && rand_r(&seed) % 2) {
            SL_REQUIRE(dlv_offsets_add(o, next) == 0);
            next++;
        } else if (next > lowest) {
            int64_t pick = lowest + rand_r(&seed) % (next - lowest);
            if (!done[pick]) {
                SL_REQUIRE(dlv_offsets_finish(o, pick) == 0);
                done[pick] = true;
            }
            while (lowest < next && done[lowest])
                lowest++;
        }
        SL_REQUIRE(dlv_offsets_commit_point(o) == (next == 0 ? -1 : lowest));
        SL_REQUIRE(dlv_offsets_held(o) == (size_t)(next - lowest));
    }
    dlv_offsets_destroy(o);
}

SL_TEST_MAIN()
