/* deliver's keyq.c: per-key hold-back. Only the head of a key may go; removing the head
 * promotes the next of the same key; other keys are independent. */
#include "keyq.h"
#include "sl_test.h"

#include <stdio.h>
#include <string.h>

struct item {
    int id;
    struct dlv_keyq_node node;
};

#define ITEM(n) ((struct item *)((char *)(n)-offsetof(struct item, node)))

SL_TEST(head_waits_and_promotion)
{
    dlv_keyq_t *q = dlv_keyq_new();
    SL_REQUIRE(q);
    struct item a1 = {1}, a2 = {2}, a3 = {3}, b1 = {4};
    SL_CHECK_INT(dlv_keyq_push(q, &a1.node, "A", 1), 1);
    SL_CHECK_INT(dlv_keyq_push(q, &a2.node, "A", 1), 0);
    SL_CHECK_INT(dlv_keyq_push(q, &b1.node, "B", 1), 1);
    SL_CHECK_INT(dlv_keyq_push(q, &a3.node, "A", 1), 0);
    SL_CHECK_INT(dlv_keyq_keys(q), 2);
    SL_CHECK(dlv_keyq_is_head(&a1.node) && !dlv_keyq_is_head(&a2.node));

    /* Removing a waiting one promotes nobody. */
    SL_CHECK(dlv_keyq_remove(q, &a2.node) == NULL);
    SL_CHECK(!dlv_keyq_queued(&a2.node));
    struct dlv_keyq_node *next = dlv_keyq_remove(q, &a1.node);
    SL_REQUIRE(next);
    SL_CHECK_INT(ITEM(next)->id, 3);
    SL_CHECK(dlv_keyq_is_head(&a3.node));
    SL_CHECK(dlv_keyq_remove(q, &a3.node) == NULL);
    SL_CHECK_INT(dlv_keyq_keys(q), 1); /* A is gone once empty */
    SL_CHECK(dlv_keyq_remove(q, &b1.node) == NULL);
    SL_CHECK_INT(dlv_keyq_keys(q), 0);
    SL_CHECK(dlv_keyq_remove(q, &b1.node) == NULL); /* not queued: a no-op */
    dlv_keyq_destroy(q);
}

SL_TEST(binary_keys_and_prefixes_are_distinct)
{
    dlv_keyq_t *q = dlv_keyq_new();
    SL_REQUIRE(q);
    struct item x = {1}, y = {2}, z = {3};
    SL_CHECK_INT(dlv_keyq_push(q, &x.node, "ab\0c", 4), 1);
    SL_CHECK_INT(dlv_keyq_push(q, &y.node, "ab", 2), 1);
    SL_CHECK_INT(dlv_keyq_push(q, &z.node, "ab\0c", 4), 0);
    SL_CHECK_INT(dlv_keyq_keys(q), 2);
    dlv_keyq_destroy(q);
}

SL_TEST(many_keys_grow_the_table_in_fifo_order)
{
    enum { KEYS = 5000, PER = 3 };
    static struct item items[KEYS * PER];
    dlv_keyq_t *q = dlv_keyq_new();
    SL_REQUIRE(q);
    for (int r = 0; r < PER; r++)
        for (int k = 0; k < KEYS; k++) {
            char key[16];
            int n = snprintf(key, sizeof(key), "k%d", k);
            struct item *it = &items[r * KEYS + k];
            it->id = r;
            SL_REQUIRE(dlv_keyq_push(q, &it->node, key, (size_t)n) == (r == 0 ? 1 : 0));
        }
    SL_CHECK_INT(dlv_keyq_keys(q), KEYS);
    for (int k = 0; k < KEYS; k++) {
        struct dlv_keyq_node *n = &items[k].node;
        for (int r = 1; r < PER; r++) {
            n = dlv_keyq_remove(q, n);
            SL_REQUIRE(n && ITEM(n)->id == r && ITEM(n) == &items[r * KEYS + k]);
        }
        SL_REQUIRE(dlv_keyq_remove(q, n) == NULL);
    }
    SL_CHECK_INT(dlv_keyq_keys(q), 0);
    dlv_keyq_destroy(q);
}

SL_TEST_MAIN()
